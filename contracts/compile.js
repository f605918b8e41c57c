// Compiles contracts/src/*.sol with solcjs (the npm package `solc`, which
// carries its compiler, so this works offline) and writes, per contract,
// out/<Name>.bin (creation bytecode, hex) and out/<Name>.abi.json, and for
// the contracts the chain serves itself (CrossShard) the code it runs,
// out/<Name>.runtime.bin.
// Run through scripts/contracts.sh, which installs solc first.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;
const sources = {};
for (const file of fs.readdirSync(path.join(here, "src")).sort()) {
  if (file.endsWith(".sol")) {
    sources[file] = { content: fs.readFileSync(path.join(here, "src", file), "utf8") };
  }
}
const input = {
  language: "Solidity",
  sources,
  // Default settings (the EVM version is solc's default), optimizer on as
  // deployments usually have it.
  settings: {
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const error of output.errors || []) {
  console.error(error.formattedMessage);
  if (error.severity === "error") failed = true;
}
if (failed) process.exit(1);
const out = path.join(here, "out");
fs.mkdirSync(out, { recursive: true });
for (const file of Object.keys(output.contracts).sort()) {
  for (const [name, contract] of Object.entries(output.contracts[file])) {
    if (contract.evm.bytecode.object.length === 0) continue; // an interface
    fs.writeFileSync(path.join(out, `${name}.bin`), contract.evm.bytecode.object + "\n");
    fs.writeFileSync(path.join(out, `${name}.abi.json`), JSON.stringify(contract.abi, null, 2) + "\n");
    if (name === "CrossShard") {
      fs.writeFileSync(path.join(out, `${name}.runtime.bin`), contract.evm.deployedBytecode.object + "\n");
    }
    console.log(`${name}: ${contract.evm.bytecode.object.length / 2} bytes (solc ${solc.version()})`);
  }
}
