import { readFileSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../config/config';
import { createAwsClients } from '../aws/clients';
import { parseLines, maskLine, upsertLines } from '../lines/admin';
import { DynamoLineStore } from '../lines/store';
import { embeddedAwsSettings } from '../config/embedded-state';

const USAGE = 'usage: npm run lines -- put <file.json> | import <file.json> | export <file.json> | get <lineId> | list | disable <lineId> | enable <lineId>';

async function main(argv: string[]): Promise<number> {
  const [command, arg] = argv;
  const config = loadConfig();
  // In the embedded default the lines table lives in the dynalite that `npm start` runs.
  const aws = config.embedded ? embeddedAwsSettings(config) : config.aws;
  const clients = createAwsClients(aws);
  const store = new DynamoLineStore({ documents: clients.documents, tableName: config.dynamodb.linesTable });
  const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  try {
    switch (command) {
      // import takes what export wrote: moving from the embedded default to AWS is export there, import here.
      case 'import':
      case 'put': {
        if (!arg) break;
        const lines = parseLines(JSON.parse(readFileSync(arg, 'utf8')), { production: config.production });
        await upsertLines(store, lines);
        print({ upserted: lines.map((l) => l.lineId) });
        return 0;
      }
      case 'export': {
        if (!arg) break;
        const lines = await store.list();
        // Unmasked, so that an import recreates the lines: the file is the operator's alone (0600), nothing is printed.
        writeFileSync(arg, `${JSON.stringify(lines, null, 2)}\n`, { mode: 0o600 });
        print({ exported: lines.map((l) => l.lineId), file: arg });
        return 0;
      }
      case 'get': {
        if (!arg) break;
        const line = await store.getById(arg);
        if (!line) {
          process.stderr.write(`line ${arg} not found\n`);
          return 1;
        }
        print(maskLine(line));
        return 0;
      }
      case 'list':
        print((await store.list()).map(maskLine));
        return 0;
      case 'disable':
      case 'enable': {
        if (!arg) break;
        if (!(await store.setActive(arg, command === 'enable'))) {
          process.stderr.write(`line ${arg} not found\n`);
          return 1;
        }
        print({ lineId: arg, active: command === 'enable' });
        return 0;
      }
    }
    process.stderr.write(`${USAGE}\n`);
    return 2;
  } finally {
    clients.destroy();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`lines: ${error.message}\n`);
    process.exit(1);
  },
);
