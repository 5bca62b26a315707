"""One exception root; every contract custom error becomes a typed Python exception with its fields.

The classes are generated from the ABI (so a new Solidity error needs no Python edit) and registered
here by name: ``errors.MarketLeaseExpired`` is a subclass of :class:`ContractRevert` whose instances
carry ``fields = {"taskId": ..., "leaseDeadline": ...}``.
"""

from __future__ import annotations

from typing import Any

import requests
from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from web3.exceptions import TimeExhausted

from ledger.artifacts import all_error_abis
from protocol.errors import PermanentError, ShardworkError, TransientError


class ChainError(TransientError):
    """The chain node could not be reached: the same step can succeed once it is back."""


class ChainMisconfigured(PermanentError):
    """The node is another chain than the manifest's, or the client lacks what the call needs (a wallet)."""


# The node is down, restarting or slow, or it dropped a sent transaction (a restart empties its mempool): the
# same step can succeed later. web3's HTTPProvider raises requests' errors, which share no base class with
# the builtin ConnectionError.
CHAIN_TRANSIENT: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    TimeExhausted,
)


class GasUnaffordable(PermanentError):
    """The sending account cannot pay the network fee (it has too little ETH); nothing was sent."""


def unaffordable(exc: Exception, address: str, balance_wei: int) -> GasUnaffordable | None:
    """The node's "insufficient funds" / "gas required exceeds allowance" answer as a GasUnaffordable, else None."""
    text = str(exc).lower()
    if "insufficient funds" not in text and "exceeds allowance" not in text:
        return None
    eth = balance_wei / 10**18  # for the message only; amounts that move are never floats
    return GasUnaffordable(
        f"{address} has {eth:.6g} ETH, not enough for the network fee: send it some ETH first "
        "(tokens and stake cannot pay for gas)"
    )


class TransactionFailed(ShardworkError):
    """A mined transaction reverted without a decodable reason."""


class ContractRevert(PermanentError):
    """A contract reverted with one of its custom errors."""

    error_name = "ContractRevert"
    field_names: tuple[str, ...] = ()

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in fields.items())
        super().__init__(f"{self.error_name}({rendered})")


class UnknownRevert(ContractRevert):
    """Revert data that matches no known custom error (e.g. a panic or a foreign contract)."""

    error_name = "UnknownRevert"


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


_BY_SELECTOR: dict[bytes, tuple[type[ContractRevert], list[str], list[str]]] = {}
_BY_NAME: dict[str, type[ContractRevert]] = {}


def _register() -> None:
    for item in all_error_abis():
        types = [i["type"] for i in item["inputs"]]
        names = [i["name"] for i in item["inputs"]]
        selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
        cls = _BY_NAME.get(item["name"])
        if cls is None:
            cls = type(item["name"], (ContractRevert,), {"error_name": item["name"], "field_names": tuple(names)})
            _BY_NAME[item["name"]] = cls
        _BY_SELECTOR[selector] = (cls, names, types)


_register()


def __getattr__(name: str) -> type[ContractRevert]:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise AttributeError(name) from None


def error_class(name: str) -> type[ContractRevert]:
    return _BY_NAME[name]


def decode_revert(data: bytes | str | None) -> ContractRevert:
    """Turns raw revert data into the matching typed exception."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    if not data or len(data) < 4:
        return UnknownRevert(data=data or b"")
    entry = _BY_SELECTOR.get(data[:4])
    if entry is None:
        return UnknownRevert(data=data)
    cls, names, types = entry
    values = [
        to_checksum_address(v) if t == "address" else v for t, v in zip(types, abi_decode(types, data[4:]), strict=True)
    ]
    return cls(**dict(zip(names, values, strict=True)))


def revert_data_of(exc: BaseException) -> bytes | None:
    """Revert bytes carried by a web3 ContractLogicError or by eth-tester's TransactionFailed
    (the embedded chain raises its own exception, with the raw bytes somewhere in its chain)."""
    seen: BaseException | None = exc
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, (bytes, str)) and data:
            return bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, bytes):
                return arg
            if isinstance(arg, str) and arg.startswith(_TESTER_REVERT):
                return _tester_revert_bytes(arg)
        seen = seen.__cause__ or seen.__context__
    return None


# eth-tester raises some view-call reverts with the bytes only in its message: "execution reverted: b'...'".
_TESTER_REVERT = "execution reverted: b"


def _tester_revert_bytes(message: str) -> bytes | None:
    import ast

    try:
        value = ast.literal_eval(message[len("execution reverted: ") :])
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, bytes) else None


def is_revert(exc: BaseException) -> bool:
    # Imported here, not at module top, so that the CLI's error handling does not load web3 at start-up.
    from eth_tester.exceptions import TransactionFailed as TesterTransactionFailed
    from web3.exceptions import ContractLogicError

    return isinstance(exc, (ContractLogicError, TesterTransactionFailed))
