// Hardhat 2 compiles with solc-js from npm: the machine has no internet for Hardhat's compiler
// download, so the build subtask is pointed at the `solc` package's soljson.js.
const path = require("path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = require("solc/package.json").version;

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async ({ solcVersion }, hre, runSuper) => {
  if (solcVersion !== SOLC_VERSION) {
    throw new Error(`only solc ${SOLC_VERSION} (npm solc) is available offline; asked for ${solcVersion}`);
  }
  const solc = require("solc");
  return {
    compilerPath: path.join(path.dirname(require.resolve("solc")), "soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: solc.version().replace(".Emscripten.clang", ""),
  };
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: {
      // Must match ledger/compiler.py so `shardwork contracts verify` reproduces the bytecode.
      optimizer: { enabled: true, runs: 200 },
      evmVersion: "cancun",
      viaIR: true,
      metadata: { bytecodeHash: "none" },
      // scripts/export_artifacts.py compares BountyMarket's and BountyGames' layouts (delegatecall shares storage).
      outputSelection: { "*": { "*": ["storageLayout"] } },
    },
  },
  paths: { sources: "./contracts", artifacts: "./build/hardhat/artifacts", cache: "./build/hardhat/cache" },
  networks: { hardhat: { chainId: 31337 } },
};
