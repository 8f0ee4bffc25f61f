// The page is type-checked without Node's types (tsconfig.web.json), so that nothing it bundles can use Node's
// API. src/types.ts, whose TrainingScale the page shares, names Node's Buffer in types the page never uses.
type Buffer = Uint8Array;
