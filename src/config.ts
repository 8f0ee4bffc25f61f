/**
 * Run configuration: model shape, optimizer and schedule, augmentation, the paper's colourfulness filter and
 * the loader. configs/*.json hold named configurations; every field has a default here, so a config file
 * only states what differs. Command-line overrides (--size, --width, --batch, --steps, --lr) go through
 * `applyOverrides`.
 */
import { readFileSync } from 'node:fs';
import { InvalidOptionError } from './core/errors.js';
import { invalidOption, nonNegativeInt, oneOf, positiveInt, positiveNumber, scaleRange } from './core/validate.js';

export interface ModelConfig {
  /** Training input size (square). The paper: 224. Must be a multiple of 8 (three stride-2 layers). */
  inputSize: number;
  /** Width multiplier applied to every layer's channel count (1 = the paper). */
  width: number;
  /** Classes of the joint classification head; 0 disables the head. The paper: 205 (Places). */
  numClasses: number;
}

export interface TrainConfig {
  /** 'adadelta' as in the paper, 'adam' as in the seed implementation. */
  optimizer: 'adadelta' | 'adam';
  lr: number;
  /** Learning-rate schedule: 'none' (constant, the paper) or 'cosine' (decays to 5% over `steps`). */
  lrDecay: 'none' | 'cosine';
  batch: number;
  steps: number;
  /** Weight of the classification loss: the paper's alpha = 1/300. */
  alpha: number;
  checkpointEvery: number;
  logEvery: number;
  /** Validation (loss, PSNR, a sample grid) every N steps, besides every checkpoint; 0 = at checkpoints only. The
   *  validation set is --val-shards, else a few samples of the training shards. */
  valEvery: number;
  /** Validation images in each report grid. */
  valImages: number;
  seed: number;
  /** Samples held in the shuffle buffer. */
  shuffleBuffer: number;
  /** Batches prepared ahead of the engine. */
  prefetch: number;
}

export interface AugmentConfig {
  /** Short side the image is scaled to before the random crop. The paper: 256. */
  resize: number;
  /** Random square crop size; equals model.inputSize. The paper: 224. */
  crop: number;
  /** Random horizontal flip. */
  flip: boolean;
  /**
   * Random scale: null (default) scales every short side to `resize`; [min, max] scales it to an integer drawn
   * uniformly in [min, max] per sample and epoch (crop <= min <= max). `resize` stays the nominal training scale
   * (colorize's 'auto' resolution).
   */
  scaleJitter: [number, number] | null;
}

export interface FilterConfig {
  /** Drop an image whose mean chroma sqrt(a^2 + b^2) is below this (a grayscale image is ~0). */
  minMeanChroma: number;
  /** Drop an image whose ab standard deviation (mean over a and b) is below this: little colour variance. */
  minAbStd: number;
  /** Drop images smaller than this on their short side. */
  minSide: number;
}

export interface LoaderConfig {
  /** Decode processes; 0 = one per core. */
  processes: number;
  /** sharp's limitInputPixels (decompression-bomb guard). */
  limitInputPixels: number;
}

export interface Config {
  name: string;
  model: ModelConfig;
  train: TrainConfig;
  augment: AugmentConfig;
  filter: FilterConfig;
  loader: LoaderConfig;
}

export const DEFAULT_CONFIG: Config = {
  name: 'default',
  model: { inputSize: 224, width: 1, numClasses: 0 },
  train: {
    optimizer: 'adam',
    lr: 1e-3,
    lrDecay: 'none',
    batch: 32,
    steps: 1000,
    alpha: 1 / 300,
    checkpointEvery: 500,
    logEvery: 10,
    valEvery: 0,
    valImages: 6,
    seed: 0,
    shuffleBuffer: 512,
    prefetch: 4,
  },
  augment: { resize: 256, crop: 224, flip: true, scaleJitter: null },
  filter: { minMeanChroma: 2, minAbStd: 2, minSide: 8 },
  loader: { processes: 0, limitInputPixels: 8192 * 8192 },
};

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export function makeConfig(partial: DeepPartial<Config> = {}): Config {
  const c: Config = {
    name: partial.name ?? DEFAULT_CONFIG.name,
    model: { ...DEFAULT_CONFIG.model, ...(partial.model ?? {}) },
    train: { ...DEFAULT_CONFIG.train, ...(partial.train ?? {}) } as TrainConfig,
    augment: { ...DEFAULT_CONFIG.augment, ...(partial.augment ?? {}) },
    filter: { ...DEFAULT_CONFIG.filter, ...(partial.filter ?? {}) },
    loader: { ...DEFAULT_CONFIG.loader, ...(partial.loader ?? {}) },
  };
  if (partial.augment?.crop === undefined) c.augment.crop = c.model.inputSize;
  if (partial.augment?.resize === undefined) c.augment.resize = Math.round((c.model.inputSize * 256) / 224);
  validateConfig(c);
  return c;
}

export function loadConfig(path: string): Config {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new InvalidOptionError(`Cannot read config ${path}: ${(err as Error).message}`);
  }
  checkKeys(raw, path);
  return makeConfig(raw as DeepPartial<Config>);
}

/**
 * A config file states only known keys: a typo (`train.batchsize`, a top-level `trian`) would otherwise be
 * ignored without a word and the default used. Keys starting with '_' are comments. Sections are objects.
 * @throws InvalidOptionError naming the file, the key and the nearest valid name.
 */
function checkKeys(raw: unknown, path: string): void {
  const isObject = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(raw)) throw invalidOption(`the config ${path}`, 'a JSON object', raw);
  const sections = DEFAULT_CONFIG as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (key.startsWith('_')) continue;
    if (!(key in sections)) throw unknownKey(path, key, Object.keys(sections));
    const known = sections[key];
    if (!isObject(known)) continue;
    if (!isObject(value)) throw invalidOption(`${key} in ${path}`, 'an object', value);
    for (const sub of Object.keys(value as Record<string, unknown>)) {
      if (!sub.startsWith('_') && !(sub in (known as Record<string, unknown>))) {
        throw unknownKey(path, `${key}.${sub}`, Object.keys(known as Record<string, unknown>).map((k) => `${key}.${k}`));
      }
    }
  }
}

function unknownKey(path: string, key: string, valid: string[]): InvalidOptionError {
  const nearest = valid.reduce((best, v) => (editDistance(key.toLowerCase(), v.toLowerCase()) < editDistance(key.toLowerCase(), best.toLowerCase()) ? v : best));
  return new InvalidOptionError(`Unknown key ${key} in the config ${path}: did you mean ${nearest}?`);
}

/** Levenshtein distance (config keys are short). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

export interface Overrides {
  size?: number;
  width?: number;
  batch?: number;
  steps?: number;
  lr?: number;
  seed?: number;
  checkpointEvery?: number;
}

/** Applies command-line overrides; --size also moves the crop, the resize (256/224 of it) and any scaleJitter range (in proportion). */
export function applyOverrides(config: Config, o: Overrides): Config {
  const c: Config = structuredClone(config);
  if (o.size !== undefined) {
    const j = c.augment.scaleJitter;
    const k = o.size / c.augment.crop;
    if (j) c.augment.scaleJitter = [Math.max(o.size, Math.round(j[0] * k)), Math.max(o.size, Math.round(j[1] * k))];
    c.model.inputSize = o.size;
    c.augment.crop = o.size;
    c.augment.resize = Math.round((o.size * 256) / 224);
  }
  if (o.width !== undefined) c.model.width = o.width;
  if (o.batch !== undefined) c.train.batch = o.batch;
  if (o.steps !== undefined) c.train.steps = o.steps;
  if (o.lr !== undefined) c.train.lr = o.lr;
  if (o.seed !== undefined) c.train.seed = o.seed;
  if (o.checkpointEvery !== undefined) c.train.checkpointEvery = o.checkpointEvery;
  validateConfig(c);
  return c;
}

export function validateConfig(c: Config): void {
  positiveInt(c.model.inputSize, 'model.inputSize');
  if (c.model.inputSize % 8 !== 0) throw invalidOption('model.inputSize', 'a multiple of 8', c.model.inputSize);
  positiveNumber(c.model.width, 'model.width');
  nonNegativeInt(c.model.numClasses, 'model.numClasses');
  oneOf(c.train.optimizer, 'train.optimizer', ['adam', 'adadelta'] as const);
  oneOf(c.train.lrDecay, 'train.lrDecay', ['none', 'cosine'] as const);
  positiveNumber(c.train.lr, 'train.lr');
  nonNegativeInt(c.train.valEvery, 'train.valEvery');
  positiveInt(c.train.batch, 'train.batch');
  positiveInt(c.train.steps, 'train.steps');
  positiveInt(c.train.checkpointEvery, 'train.checkpointEvery');
  positiveInt(c.train.logEvery, 'train.logEvery');
  positiveInt(c.train.prefetch, 'train.prefetch');
  positiveInt(c.augment.crop, 'augment.crop');
  positiveInt(c.augment.resize, 'augment.resize');
  if (c.augment.resize < c.augment.crop) {
    throw invalidOption('augment.resize', `at least augment.crop (${c.augment.crop})`, c.augment.resize);
  }
  scaleRange(c.augment.scaleJitter, 'augment.scaleJitter', c.augment.crop);
}

/**
 * What a resumed run was asked to change: every key of model, train (but steps), augment and filter whose value
 * in `asked` differs from `saved` (the checkpoint's), as `key: saved -> asked`. A resumed run keeps its model and
 * schedule (the data order and the optimizer state depend on them), so `pipe train --resume` refuses these.
 */
export function resumeConflicts(saved: Config, asked: Config): string[] {
  const out: string[] = [];
  for (const section of ['model', 'train', 'augment', 'filter'] as const) {
    const a = saved[section] as unknown as Record<string, unknown>;
    const b = asked[section] as unknown as Record<string, unknown>;
    for (const key of Object.keys(b)) {
      if (section === 'train' && key === 'steps') continue;
      if (JSON.stringify(a[key] ?? null) !== JSON.stringify(b[key] ?? null)) {
        out.push(`${section}.${key}: ${JSON.stringify(a[key] ?? null)} -> ${JSON.stringify(b[key] ?? null)}`);
      }
    }
  }
  return out;
}

