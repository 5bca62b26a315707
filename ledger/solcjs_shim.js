// Makes npm's solc-js look like a native solc to py-solc-x: answers `--version` with the
// `Version: X.Y.Z+commit.HASH` line py-solc-x parses, and runs `--standard-json` from stdin,
// printing only the JSON (solc-js's own CLI prints a banner line first and rejects --allow-paths).
const solc = require(process.env.SHARDWORK_SOLCJS || "solc");

const args = process.argv.slice(2);
if (args.includes("--version")) {
  console.log("solc, the solidity compiler commandline interface");
  console.log("Version: " + solc.version().replace(".Emscripten.clang", ""));
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  console.error("this shim supports only --version and --standard-json");
  process.exit(2);
}
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => process.stdout.write(solc.compile(input)));
