/**
 * The piscina worker of the `lab` stage: sRGB bytes -> the network's L and ab planes plus the filter's
 * verdict. The RGB buffer arrives by transfer (Piscina.move) and both planes go back by transfer, so no
 * pixel is copied between threads. The thresholds come once, in workerData.
 */
import { Piscina } from 'piscina';
import { splitLab } from '../color/lab.js';
import { filterReason, type ColourFilter, type FilterReason } from './filter.js';

export interface LabWorkerResult {
  L: Float32Array;
  ab: Float32Array;
  /** Why the filter drops this image, or null to keep it. */
  reason: FilterReason | null;
}

const thresholds = (Piscina.workerData as { filter: ColourFilter } | undefined)?.filter ?? { minMeanChroma: 0, minAbStd: 0 };

export default function labTask(rgb: Uint8Array): unknown {
  const { L, ab, stats } = splitLab(rgb);
  const result: LabWorkerResult = { L, ab, reason: filterReason(stats, thresholds) };
  // A movable holding both planes' buffers: piscina transfers every buffer kTransferable lists.
  return Piscina.move({
    get [Piscina.transferableSymbol]() {
      return [L.buffer, ab.buffer];
    },
    get [Piscina.valueSymbol]() {
      return result;
    },
  } as unknown as ArrayBuffer);
}
