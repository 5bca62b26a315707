from web3 import HTTPProvider, Web3

from ledger.artifacts import load
from ledger.chain import dev_accounts
from ledger.errors import error_class
from ledger.localnode import Anvil
from ledger.tx import Transactor
from tests.contracts.harness import TOKEN, Chain, reverts


def test_faucet_mints_up_to_the_limit(chain: Chain) -> None:
    receipt = chain.send("alice", chain.token.functions.faucet(chain.addr("alice"), 10_000 * TOKEN))
    assert receipt["status"] == 1
    with reverts("TokenFaucetLimitExceeded", requested=10_000 * TOKEN + 1, limit=10_000 * TOKEN):
        chain.send("alice", chain.token.functions.faucet(chain.addr("alice"), 10_000 * TOKEN + 1))


def test_faucet_reverts_when_disabled(chain: Chain) -> None:
    art = load("Token")
    factory = chain.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    address = chain.send("deployer", factory.constructor(chain.addr("deployer"), 0, False))["contractAddress"]
    token = chain.w3.eth.contract(address=address, abi=art.abi)
    with reverts("TokenFaucetDisabled"):
        chain.send("alice", token.functions.faucet(chain.addr("alice"), 1))


def test_token_constructor_refuses_faucet_on_public_chain_id() -> None:
    node = Anvil(chain_id=10)
    try:
        w3 = Web3(HTTPProvider(node.url))
        deployer = Transactor(w3, _anvil_key0(w3))
        art = load("Token")
        factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        try:
            deployer.send(factory.constructor(deployer.address, 0, True))
        except error_class("TokenFaucetOnPublicChain") as exc:
            assert exc.fields["chainId"] == 10
        else:
            raise AssertionError("deployment with a faucet on chain 10 succeeded")
        # Without the faucet the same chain accepts it.
        assert deployer.send(factory.constructor(deployer.address, 5, False))["status"] == 1
    finally:
        node.stop()


def _anvil_key0(w3: Web3):  # type: ignore[no-untyped-def]
    from eth_account import Account

    from ledger.chain import DEV_MNEMONIC

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/0")


def test_dev_accounts_refuse_non_local_chain() -> None:
    node = Anvil(chain_id=10)
    try:
        w3 = Web3(HTTPProvider(node.url))
        try:
            dev_accounts(w3)
        except Exception as exc:  # noqa: BLE001 - asserting the type below
            assert "not a local development chain" in str(exc)
        else:
            raise AssertionError("dev accounts handed out on chain 10")
    finally:
        node.stop()
