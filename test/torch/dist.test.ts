import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidOptionError } from '../../src/core/errors.js';
import { localRankEnv, parseMaster, rankPlan } from '../../src/torch/dist.js';

test('no flags and no launcher variables: one process', () => {
  assert.equal(rankPlan({}, {}), null);
  assert.equal(rankPlan({ devices: 1 }, {}), null);
  assert.equal(rankPlan({}, { RANK: '0', WORLD_SIZE: '1', MASTER_ADDR: 'h' }), null);
});

test('--devices N: this process is rank 0 of N on 127.0.0.1 and starts ranks 1..N-1', () => {
  const p = rankPlan({ devices: 4 }, {})!;
  assert.deepEqual([p.rank, p.world, p.localRank, p.localWorld, p.addr, p.port, p.spawn], [0, 4, 0, 4, '127.0.0.1', 0, [1, 2, 3]]);
});

test('--nodes: ranks are numbered machine by machine, as torchrun numbers them', () => {
  const p = rankPlan({ nodes: 3, nodeRank: 2, devices: 2, master: 'head:29400' }, {})!;
  assert.deepEqual([p.rank, p.world, p.localWorld, p.addr, p.port, p.spawn], [4, 6, 2, 'head', 29400, [1]]);
  const env = localRankEnv(p, 1, 29400);
  assert.deepEqual(env, { COLORPIPE_RANK: '5', COLORPIPE_WORLD: '6', COLORPIPE_LOCAL_RANK: '1', COLORPIPE_LOCAL_WORLD: '2', COLORPIPE_MASTER: 'head:29400' });
  // The rank it starts finds its place in that environment.
  const child = rankPlan({}, env)!;
  assert.deepEqual([child.rank, child.world, child.localRank, child.addr, child.port, child.spawn], [5, 6, 1, 'head', 29400, []]);
  assert.throws(() => rankPlan({ nodes: 2 }, {}), /--nodes needs --node-rank and --master/);
  assert.throws(() => rankPlan({ nodes: 2, nodeRank: 2, master: 'h:1' }, {}), /--node-rank/);
});

test('torchrun or a PyTorchJob: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT', () => {
  const p = rankPlan({}, { RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '23456' })!;
  assert.deepEqual([p.rank, p.world, p.localRank, p.localWorld, p.addr, p.port, p.spawn], [3, 8, 1, 2, '10.0.0.1', 23456, []]);
  assert.throws(() => rankPlan({}, { RANK: '0', WORLD_SIZE: '2' }), /MASTER_ADDR is not/);
  assert.throws(() => rankPlan({}, { RANK: 'x', WORLD_SIZE: '2', MASTER_ADDR: 'h' }), (e: unknown) => e instanceof InvalidOptionError && /RANK \(in the environment\)/.test(e.message));
});

test('Slurm tasks: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID with MASTER_ADDR; a job array is not a data-parallel run', () => {
  const p = rankPlan({}, { SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_NTASKS_PER_NODE: '4', MASTER_ADDR: 'n01' })!;
  assert.deepEqual([p.rank, p.world, p.localRank, p.localWorld, p.addr, p.port], [5, 8, 1, 4, 'n01', 29500]);
  assert.throws(() => rankPlan({}, { SLURM_PROCID: '0', SLURM_NTASKS: '2' }), /export MASTER_ADDR=\$\(scontrol show hostnames/);
  assert.equal(rankPlan({}, { SLURM_PROCID: '0', SLURM_NTASKS: '4', SLURM_ARRAY_TASK_ID: '2' }), null);
});

test('flags win over the launcher\'s variables', () => {
  const p = rankPlan({ devices: 2 }, { RANK: '3', WORLD_SIZE: '8', MASTER_ADDR: 'h' })!;
  assert.deepEqual([p.rank, p.world], [0, 2]);
});

test('--master is HOST:PORT (IPv6 in brackets)', () => {
  assert.deepEqual(parseMaster('[::1]:29500', '--master'), { addr: '::1', port: 29500 });
  assert.throws(() => parseMaster('host', '--master'), /--master/);
  assert.throws(() => parseMaster('host:0', '--master'), /HOST:PORT/);
});
