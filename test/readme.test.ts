/**
 * The README's TypeScript examples compile under `strict` as written: every ```ts block is written to a folder
 * inside the project (so `import ... from 'colorpipe'` resolves to this package's own dist/src/index.d.ts through
 * package.json's `exports`, as a user's import would) and type-checked with the compiler API under the project's
 * compiler options. A diagnostic fails the test naming its line in README.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { ROOT, tmpDir } from './helpers/tar.js';

interface Block {
  /** README.md's line (1-based) of the block's first line of code. */
  line: number;
  code: string;
}

/** The ```ts (or ```typescript) blocks of a Markdown text, with where each starts. */
export function tsBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    blocks.push({ line: start + 1, code: lines.slice(start, end).join('\n') + '\n' });
    i = end;
  }
  return blocks;
}

test('tsBlocks finds each block and the README line it starts on', () => {
  const md = ['# x', '```ts', 'const a = 1;', '```', 'text', '```bash', 'ls', '```', '```typescript', 'let b;', 'b = 2;', '```'].join('\n');
  assert.deepEqual(tsBlocks(md), [{ line: 3, code: 'const a = 1;\n' }, { line: 10, code: 'let b;\nb = 2;\n' }]);
});

test("every ```ts block of README.md type-checks under strict against the package's own types", { timeout: 60_000 }, (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = tsBlocks(readme);
  assert.ok(blocks.length >= 2, 'the README has its TypeScript examples');
  const index = join(ROOT, 'dist', 'src', 'index.d.ts');
  assert.ok(readFileSync(index, 'utf8').length > 0, 'built first: dist/src/index.d.ts');

  // Inside the package (dist/ is git-ignored), so the package's self-reference resolves 'colorpipe' to it.
  const dir = tmpDir(t, 'readme-', join(ROOT, 'dist'));
  const files = blocks.map((b) => {
    const file = join(dir, `readme-line-${b.line}.ts`);
    writeFileSync(file, b.code);
    return { file, line: b.line };
  });
  const { config } = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile) as { config: unknown };
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, ROOT);
  // Without outDir and rootDir: with them, TypeScript maps dist/src/index.d.ts back to src/index.ts; a user
  // compiles against the declarations the package ships.
  const { outDir: _outDir, rootDir: _rootDir, ...own } = parsed.options;
  const options: ts.CompilerOptions = { ...own, noEmit: true, declaration: false, sourceMap: false, incremental: false };
  assert.equal(options.strict, true, "the project's options are strict");
  const program = ts.createProgram(files.map((f) => f.file), options);
  assert.ok(program.getSourceFile(index), "'colorpipe' resolves to the package's own dist/src/index.d.ts");

  const problems: string[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    const block = files.find((f) => d.file?.fileName === f.file.split('\\').join('/') || d.file?.fileName === f.file);
    if (d.file && block && d.start !== undefined) {
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      problems.push(`README.md:${block.line + line}:${character + 1}: ${text}`);
    } else {
      problems.push(`${d.file?.fileName ?? 'options'}: ${text}`);
    }
  }
  assert.deepEqual(problems, [], `README.md's TypeScript examples do not compile:\n${problems.join('\n')}`);
});
