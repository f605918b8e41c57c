// ethers v6 against an atoll dev node of two shards, as a new user would
// use it: compiles the ERC-20, the AMM pair and its factory with solcjs
// (the npm package `solc`), deploys the tokens and the factory from the
// first account of the standard test mnemonic, has the factory create a
// pair, transfers, approves, adds liquidity and swaps, waits for
// every receipt, reads the events back with queryFilter (eth_getLogs),
// decodes a revert reason, sends value to an account on the other
// shard, and uses the contracts from an account on the other shard
// (cross-shard calls: transfer, approve, swap, a pair created through the
// factory, a failing transfer). Usage: node ethers_sends.js RPC_URL (NODE_PATH holding ethers and
// solc; scripts/eth-clients.sh installs them).
const fs = require("fs");
const path = require("path");
const { ethers } = require("ethers");
const solc = require("solc");

const rpc = process.argv[2];
const MNEMONIC = "test test test test test test test test test test test junk";

function check(what, got, expected) {
  const same = JSON.stringify(got, (_, v) => (typeof v === "bigint" ? v.toString() : v)) ===
    JSON.stringify(expected, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  if (!same) {
    console.error(`ethers: ${what}: got ${got}, expected ${expected}`);
    process.exit(1);
  }
  console.log(`ethers: ${what}: ${got}`);
}

function compile() {
  const dir = path.join(__dirname, "../../contracts/src");
  const sources = {};
  for (const file of ["Token.sol", "Pair.sol", "Factory.sol"]) {
    sources[file] = { content: fs.readFileSync(path.join(dir, file), "utf8") };
  }
  const output = JSON.parse(solc.compile(JSON.stringify({
    language: "Solidity",
    sources,
    settings: { outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  })));
  for (const error of output.errors || []) {
    if (error.severity === "error") throw new Error(error.formattedMessage);
  }
  const get = (file, name) => output.contracts[file][name];
  return {
    Token: get("Token.sol", "Token"),
    Pair: get("Pair.sol", "Pair"),
    Factory: get("Factory.sol", "Factory"),
  };
}

let compiledToken;

async function main() {
  const compiled = compile();
  compiledToken = () => compiled.Token;
  console.log(`ethers: compiled with solc ${solc.version()}`);
  // ethers answers an identical request from a cache for 250 ms; a dev
  // node confirms faster than that, so two deployments in a row would get
  // the same "pending" nonce. Turn the cache off, as with anvil.
  const provider = new ethers.JsonRpcProvider(rpc, undefined, { cacheTimeout: -1 });
  if (process.env.ETHERS_DEBUG) {
    provider.on("debug", (e) => console.log(e.action, JSON.stringify(e.payload || e.result || e.error)));
  }
  const wallet = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0/0").connect(provider);
  const other = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0/1").address;
  check("the first mnemonic account", wallet.address, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
  check("funded by genesis", (await provider.getBalance(wallet.address)) > 10n ** 18n, true);
  const network = await provider.getNetwork();
  console.log(`ethers: chain ${network.chainId}, block ${await provider.getBlockNumber()}`);

  const supply = 10n ** 24n;
  const deployable = (name) => new ethers.ContractFactory(compiled[name].abi, compiled[name].evm.bytecode.object, wallet);
  const a = await (await deployable("Token").deploy(supply)).waitForDeployment();
  const b = await (await deployable("Token").deploy(supply)).waitForDeployment();
  check("deployer's balance", await a.balanceOf(wallet.address), supply);
  // The pair comes from the factory (CREATE2 from a contract), as on
  // Uniswap V2: it lives on the factory's shard.
  const pairFactory = await (await deployable("Factory").deploy()).waitForDeployment();
  let receipt = await (await pairFactory.createPair(await a.getAddress(), await b.getAddress())).wait();
  const [created] = receipt.logs.map((log) => pairFactory.interface.parseLog(log)).filter(Boolean);
  const pairAddress = await pairFactory.getPair(await a.getAddress(), await b.getAddress());
  check("PairCreated event", [created.args.pair, created.args.count], [pairAddress, 1n]);
  const pair = new ethers.Contract(pairAddress, compiled.Pair.abi, wallet);
  check("the pair's tokens", [await pair.token0(), await pair.token1()],
    [await a.getAddress(), await b.getAddress()].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : 1)));

  receipt = await (await a.transfer(other, 1000n)).wait();
  check("transfer status", receipt.status, 1);
  const [transfer] = receipt.logs.map((log) => a.interface.parseLog(log)).filter(Boolean);
  check("Transfer event", [transfer.args.to, transfer.args.value], [other, 1000n]);
  check("confirmations", (await receipt.confirmations()) >= 1, true);
  for (const token of [a, b]) {
    await (await token.approve(await pair.getAddress(), supply)).wait();
  }
  await (await pair.addLiquidity(10n ** 21n, 10n ** 21n)).wait();
  const quote = await pair.quote(10n ** 18n, true);
  const before = await b.balanceOf(wallet.address);
  receipt = await (await pair.swap(10n ** 18n, true, quote)).wait();
  const swap = receipt.logs.map((log) => pair.interface.parseLog(log)).find((e) => e && e.name === "Swap");
  check("Swap event", [swap.args.amountIn, swap.args.amountOut], [10n ** 18n, quote]);
  check("the swap paid out", (await b.balanceOf(wallet.address)) - before, quote);

  const transfers = await a.queryFilter(a.filters.Transfer(wallet.address), 0, "latest");
  // To `other`, and the liquidity and the swap into the pair.
  check("Transfer logs from the deployer (eth_getLogs)", transfers.length, 3);

  try {
    await a.transfer.staticCall(other, supply * 2n);
    throw new Error("a transfer above the balance did not revert");
  } catch (e) {
    check("revert reason", e.reason, "Token: balance too low");
  }

  const mine = (await provider.send("atoll_getAccount", [wallet.address])).shard;
  let far;
  for (let i = 0; i < 64 && !far; i++) {
    const candidate = ethers.Wallet.createRandom().address;
    if ((await provider.send("atoll_getAccount", [candidate])).shard !== mine) far = candidate;
  }
  const paidBefore = await provider.getBalance(wallet.address);
  receipt = await (await wallet.sendTransaction({ to: far, value: 4242n })).wait();
  check("cross-shard value: status and gas", [receipt.status, receipt.gasUsed], [1, 21000n]);
  check("the sender paid value plus gas", paidBefore - (await provider.getBalance(wallet.address)),
    4242n + receipt.gasUsed * receipt.gasPrice);
  const deadline = Date.now() + 30000;
  while ((await provider.getBalance(far)) !== 4242n) {
    if (Date.now() > deadline) throw new Error("the value never arrived on the other shard");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  check("the value arrived on the other shard", await provider.getBalance(far), 4242n);
  const block = await provider.getBlock(receipt.blockNumber, true);
  check("the block lists the transaction", block.transactions.includes(receipt.hash), true);

  await crossShardCalls(provider, wallet, mine, a, b, pair, pairFactory, deployable);
  console.log("ethers: every transaction did what it should");
  provider.destroy();
}

// A mnemonic account on the other shard uses the contracts, which live on
// the deployer's shard: every call crosses shards (a call receipt there, a
// refund back), and ethers sees ordinary receipts once the refund settled.
async function crossShardCalls(provider, wallet, mine, a, b, pair, pairFactory, deployable) {
  let user;
  for (let i = 1; i < 10 && !user; i++) {
    const candidate = ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`);
    if ((await provider.send("atoll_getAccount", [candidate.address])).shard !== mine) {
      user = candidate.connect(provider);
    }
  }
  if (!user) throw new Error("no dev account on the other shard");
  await (await a.transfer(user.address, 10n ** 19n)).wait();
  const asUser = (contract) => contract.connect(user);

  const paidBefore = await provider.getBalance(user.address);
  let receipt = await (await asUser(a).transfer(wallet.address, 5n)).wait();
  check("cross-shard call: status", receipt.status, 1);
  const [moved] = receipt.logs.map((log) => a.interface.parseLog(log)).filter(Boolean);
  check("cross-shard call: its Transfer event", [moved.args.from, moved.args.value], [user.address, 5n]);
  check("cross-shard call: the caller paid exactly the gas used",
    paidBefore - (await provider.getBalance(user.address)), receipt.gasUsed * receipt.gasPrice);
  const logged = await a.queryFilter(a.filters.Transfer(user.address), 0, "latest");
  check("cross-shard call: its event in eth_getLogs",
    logged.map((l) => [l.transactionHash, l.blockNumber]), [[receipt.hash, receipt.logs[0].blockNumber]]);
  const status = await provider.send("atoll_getTransactionStatus", [receipt.hash]);
  const kinds = status.receipts.map((r) => (r.call ? "call" : "refund"));
  check("cross-shard call: its legs", kinds, ["call", "refund"]);

  await (await asUser(a).approve(await pair.getAddress(), 10n ** 19n)).wait();
  const quote = await pair.quote(10n ** 18n, true);
  receipt = await (await asUser(pair).swap(10n ** 18n, true, quote)).wait();
  const swap = receipt.logs.map((log) => pair.interface.parseLog(log)).find((e) => e && e.name === "Swap");
  check("cross-shard swap: Swap event", [swap.args.amountIn, swap.args.amountOut], [10n ** 18n, quote]);
  check("cross-shard swap: the user got the tokens", await b.balanceOf(user.address), quote);

  // The user has the factory create a pair: the call crosses shards, the
  // pair is created on the factory's shard, and the receipt carries the
  // factory's event.
  const c = await (await deployable("Token").deploy(10n ** 24n)).waitForDeployment();
  receipt = await (await asUser(pairFactory).createPair(await b.getAddress(), await c.getAddress())).wait();
  const [made] = receipt.logs.map((log) => pairFactory.interface.parseLog(log)).filter(Boolean);
  check("cross-shard createPair: PairCreated", [made.args.pair, made.args.count],
    [await pairFactory.getPair(await b.getAddress(), await c.getAddress()), 2n]);
  check("cross-shard createPair: the pair lives with the factory",
    (await provider.send("atoll_getAccount", [made.args.pair])).shard, mine);
  const madeStatus = await provider.send("atoll_getTransactionStatus", [receipt.hash]);
  check("cross-shard createPair: its legs", madeStatus.receipts.map((r) => (r.call ? "call" : "refund")),
    ["call", "refund"]);

  // The user has a token created on the deployer's shard, not its own,
  // through the cross-shard contract, at the address it computes first.
  const crossShard = new ethers.Contract("0x00000000000000000000000000000000000a7011", [
    "function createAsync(uint16 shard, bytes initCode, bytes32 salt, uint256 gas) payable",
    "function addressOf(address caller, bytes32 salt, bytes32 codeHash) view returns (address)",
  ], user);
  const initCode = ethers.concat([compiledToken().evm.bytecode.object.replace(/^(?!0x)/, "0x"),
    ethers.AbiCoder.defaultAbiCoder().encode(["uint256"], [777n])]);
  const salt = ethers.id("atoll ethers example");
  const where = await crossShard.addressOf(user.address, salt, ethers.keccak256(initCode));
  const gas = 2000000n;
  // A legacy price, so tx.gasprice is known: the value then pays exactly
  // the gas (the token's constructor takes no value).
  const price = 1n;
  receipt = await (await crossShard.createAsync(mine, initCode, salt, gas,
    { value: gas * price, type: 0, gasPrice: price })).wait();
  check("created on the other shard: status", receipt.status, 1);
  const deadline2 = Date.now() + 30000;
  while ((await provider.getCode(where)) === "0x") {
    if (Date.now() > deadline2) throw new Error("the contract was never created on the other shard");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const created = new ethers.Contract(where, a.interface, provider);
  // Its constructor's msg.sender is the cross-shard contract.
  check("created on the other shard: its supply", await created.totalSupply(), 777n);
  check("created on the other shard: it lives there",
    (await provider.send("atoll_getAccount", [where])).shard, mine);

  // The gas the creation did not use comes back to the user in a refund
  // receipt a few blocks after the code exists: wait for every leg to be
  // final before taking the balance the next check starts from.
  await settled(provider, receipt.hash, user.address);

  const failedBefore = await provider.getBalance(user.address);
  const tx = await asUser(a).transfer(wallet.address, 10n ** 30n, { gasLimit: 100000n });
  try {
    await tx.wait();
    throw new Error("a cross-shard transfer above the balance did not fail");
  } catch (e) {
    if (!e.receipt) throw e;
    check("failed cross-shard call: status", e.receipt.status, 0);
    check("failed cross-shard call: only the gas used was paid",
      failedBefore - (await provider.getBalance(user.address)), e.receipt.gasUsed * e.receipt.gasPrice);
  }
}

// Waits until the transaction `hash` is final with every receipt it
// caused final, the last of them back on `account`'s shard.
async function settled(provider, hash, account) {
  const home = (await provider.send("atoll_getAccount", [account])).shard;
  const deadline = Date.now() + 30000;
  for (;;) {
    const status = await provider.send("atoll_getTransactionStatus", [hash]);
    const legs = status.receipts;
    if (status.status === "final" && legs.length > 0 && legs.every((r) => r.status === "final") &&
        legs[legs.length - 1].destination === home) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`${hash} did not settle: ${JSON.stringify(status)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

main().catch((e) => {
  console.error(`ethers: ${e.stack || e}`);
  process.exit(1);
});
