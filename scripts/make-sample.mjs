// Cuts the bundled corpus sample (data/sample/) from ../shared/corpus: the
// first documents of each split, in file order, up to a character budget.
// Deterministic; rerun only to change the sample:
//   node scripts/make-sample.mjs [path/to/corpus]
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { createGunzip, createGzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import { once } from 'node:events';

const corpus = process.argv[2] ?? new URL('../../shared/corpus/', import.meta.url).pathname;
const out = new URL('../data/sample/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });

async function cut(split, budget) {
  const lines = createInterface({ input: createReadStream(`${corpus}/linux-docs.${split}.json.gz`).pipe(createGunzip()), crlfDelay: Infinity });
  const gz = createGzip({ level: 9 });
  const file = createWriteStream(`${out}/${split}.json.gz`);
  gz.pipe(file);
  let chars = 0;
  let docs = 0;
  for await (const line of lines) {
    const { text } = JSON.parse(line);
    if (chars + text.length > budget) continue;
    gz.write(line + '\n');
    chars += text.length;
    docs++;
    if (chars > budget * 0.99) break;
  }
  gz.end();
  await once(file, 'finish');
  console.log(`${split}: ${docs} documents, ${chars} characters`);
}

await cut('train', 3_000_000);
await cut('validation', 300_000);
