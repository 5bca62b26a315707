#!/usr/bin/env node
// A native-solc command line around npm's solc-js, for tools that insist on a solc binary (forge).
// `--version` prints the `Version: X.Y.Z+commit.HASH` line they parse; `--standard-json` reads the
// standard-JSON input on stdin and prints only the JSON output. Imports the input does not carry are
// read from --base-path / --include-path, the repository root and its node_modules. Other flags
// (--allow-paths, ...) are accepted and ignored: solc-js reads no files itself.
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..", "..");
const solc = require(require.resolve("solc", { paths: [root] }));

const args = process.argv.slice(2);
if (args.includes("--version") || args.includes("-v")) {
  console.log("solc, the solidity compiler commandline interface");
  console.log("Version: " + solc.version().replace(".Emscripten.clang", ""));
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  console.error("solc-native.js (solc-js " + solc.version() + "): only --version and --standard-json are supported");
  process.exit(2);
}

const searchDirs = [];
for (let i = 0; i < args.length; ++i) {
  if ((args[i] === "--base-path" || args[i] === "--include-path") && i + 1 < args.length) {
    searchDirs.push(path.resolve(args[++i]));
  }
}
searchDirs.push(process.cwd(), root, path.join(root, "node_modules"));

function findImport(unit) {
  const candidates = path.isAbsolute(unit) ? [unit] : searchDirs.map((dir) => path.join(dir, unit));
  for (const file of candidates) {
    try {
      return { contents: fs.readFileSync(file, "utf8") };
    } catch (err) {
      if (err.code !== "ENOENT" && err.code !== "EISDIR") throw err;
    }
  }
  return { error: `File not found: ${unit} (searched ${searchDirs.join(", ")})` };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => process.stdout.write(solc.compile(input, { import: findImport })));
