import { readFileSync } from 'node:fs';
import { loadConfig } from '../config/config';
import { createAwsClients } from '../aws/clients';
import { parseLines, maskLine, upsertLines } from '../lines/admin';
import { DynamoLineStore } from '../lines/store';
import { embeddedAwsSettings } from '../config/embedded-state';

const USAGE = 'usage: npm run lines -- put <file.json> | get <lineId> | list | disable <lineId> | enable <lineId>';

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
      case 'put': {
        if (!arg) break;
        const lines = parseLines(JSON.parse(readFileSync(arg, 'utf8')), { production: config.production });
        await upsertLines(store, lines);
        print({ upserted: lines.map((l) => l.lineId) });
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
