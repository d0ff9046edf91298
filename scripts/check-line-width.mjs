// The formatter wraps code but not long strings and comments: this fails CI on any line of the
// project's TypeScript wider than the formatter's configured width (biome.json).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const width = JSON.parse(fs.readFileSync(new URL('../biome.json', import.meta.url), 'utf8')).formatter.lineWidth;
const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts', '*.mjs', '*.tsx'], { encoding: 'utf8' })
  .split('\n')
  .filter((f) => f && !f.includes('/generated/') && fs.existsSync(f));
const long = [];
for (const file of files) {
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.length > width) long.push(`${file}:${i + 1}: ${line.length} characters`);
    });
}
if (long.length) {
  console.error(`lines wider than ${width} characters:\n${long.join('\n')}`);
  process.exit(1);
}
console.log(`line width: ${files.length} files, none wider than ${width} characters`);
