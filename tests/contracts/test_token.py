import pytest
from web3 import HTTPProvider, Web3

from devtools.anvil import Anvil
from ledger.artifacts import load
from ledger.chain import dev_accounts, mnemonic_accounts
from ledger.errors import ChainMisconfigured
from ledger.tx import Transactor
from tests.support.chain import TOKEN, Chain, reverts


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
        deployer = Transactor(w3, mnemonic_accounts(1)[0])
        art = load("Token")
        factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        with reverts("TokenFaucetOnPublicChain", chainId=10):
            deployer.send(factory.constructor(deployer.address, 0, True))
        # Without the faucet the same chain accepts it.
        assert deployer.send(factory.constructor(deployer.address, 5, False))["status"] == 1
    finally:
        node.stop()


def test_dev_accounts_refuse_non_local_chain() -> None:
    node = Anvil(chain_id=10)
    try:
        w3 = Web3(HTTPProvider(node.url))
        with pytest.raises(ChainMisconfigured, match="not a local development chain"):
            dev_accounts(w3)
    finally:
        node.stop()
