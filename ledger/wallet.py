"""Standard encrypted V3 keystores (eth-account: scrypt, a random salt per file), mode 0600.

The address is stored in the clear, as other Ethereum tools do, so it can be shown without the password.
Passwords come from a file, an environment variable or a prompt; never from a command-line flag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from protocol.errors import PermanentError

PASSWORD_ENV = "SHARDWORK_PASSWORD"


class WalletError(PermanentError):
    """A keystore that is missing, malformed, or does not open with the given password."""


def create_keystore(path: Path, password: str, private_key: bytes | None = None) -> str:
    """Writes a new keystore (refusing to overwrite one) and returns its address."""
    if len(password) < 8:
        raise WalletError("choose a password of at least 8 characters")
    account = Account.from_key(private_key) if private_key is not None else Account.create()
    keystore = Account.encrypt(account.key, password, kdf="scrypt")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WalletError(f"{path} already exists; choose another name") from None
    with os.fdopen(fd, "w") as f:
        json.dump(keystore, f)
    return account.address


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise WalletError(f"no keystore at {path}: create one with `shardwork wallet new`") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WalletError(f"{path} is not a keystore file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or "crypto" not in data and "Crypto" not in data:
        raise WalletError(f"{path} is not a V3 keystore")
    return data


def recorded_address(path: Path) -> str | None:
    """The address the keystore records in the clear; None when it records none (the V3 format makes it
    optional: Foundry's `cast wallet new` leaves it out), and then only unlocking it tells."""
    address = _read(path).get("address")
    if address is None:
        return None
    if not isinstance(address, str) or not Web3.is_address("0x" + address.removeprefix("0x")):
        raise WalletError(f"keystore {path} records {str(address)[:50]!r}, which is not an address")
    return Web3.to_checksum_address("0x" + address.removeprefix("0x"))


def address_of(path: Path) -> str:
    """The keystore's recorded address, for what needs no password; WalletError (saying how) when it has none."""
    address = recorded_address(path)
    if address is None:
        raise WalletError(
            f"keystore {path} records no address (Foundry's `cast wallet new` leaves it out); it is read when the "
            f"keystore is unlocked: set {PASSWORD_ENV} or pass --password-file"
        )
    return address


def load_account(path: Path, password: str) -> LocalAccount:
    data = _read(path)
    try:
        key = Account.decrypt(data, password)
    except ValueError:
        raise WalletError(f"wrong password for keystore {path}") from None
    account = Account.from_key(key)
    recorded = recorded_address(path)
    if recorded is not None and recorded != account.address:
        # Shown without the password, the clear address must be the key's: else funds go where no key signs.
        raise WalletError(f"keystore {path} records the address {recorded}, but its key is {account.address}")
    return account


def read_password(password_file: Path | None, prompt: bool = True) -> str:
    """From --password-file, else $SHARDWORK_PASSWORD, else an interactive prompt."""
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\n")
        except OSError as exc:
            raise WalletError(f"cannot read password file {password_file}: {exc.strerror}") from None
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV]
    if not prompt:
        raise WalletError(f"no password: pass --password-file or set {PASSWORD_ENV}")
    import getpass

    return getpass.getpass("keystore password: ")
