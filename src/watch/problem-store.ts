import { BatchGetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { LINE_PROBLEMS, type ActiveProblem, type LineProblem, type ProblemVerdict } from './problems';

/**
 * A line's problems, stored so that every process (the console, the gauge) sees what the one
 * watcher found. One item per line in the dedupe table, `pk = watch#problems#<lineId>`: that table
 * exists in every deployment and is keyed by a free-form string, and the lines table is not the
 * place (a LINES_FILE upsert puts whole line items, which would wipe the problems). The item has
 * no lineId or receivedAt attribute, so it never appears in the journal's indexes.
 */
export interface ProblemStore {
  /** Applies a verdict in one atomic write; returns the problems as they were before it. */
  apply(lineId: string, verdict: ProblemVerdict, at: Date): Promise<ActiveProblem[]>;
  /** The stored problems of each line (lines with none are absent from the map). */
  read(lineIds: string[]): Promise<Map<string, ActiveProblem[]>>;
}

export const problemsKey = (lineId: string) => `watch#problems#${lineId}`;

const sinceAttr = (p: LineProblem) => `${p}_since`;
const detailAttr = (p: LineProblem) => `${p}_detail`;

export function problemsOfItem(item: Record<string, unknown> | undefined): ActiveProblem[] {
  if (!item) return [];
  const found: ActiveProblem[] = [];
  for (const problem of LINE_PROBLEMS) {
    const since = item[sinceAttr(problem)];
    if (typeof since !== 'string') continue;
    const detail = item[detailAttr(problem)];
    found.push({ problem, since, ...(typeof detail === 'string' ? { detail } : {}) });
  }
  return found;
}

export class DynamoProblemStore implements ProblemStore {
  constructor(private readonly options: { documents: DynamoDBDocumentClient; tableName: string }) {}

  async apply(lineId: string, verdict: ProblemVerdict, at: Date): Promise<ActiveProblem[]> {
    const names: Record<string, string> = { '#u': 'updatedAt' };
    const values: Record<string, unknown> = { ':u': at.toISOString() };
    const sets = ['#u = :u'];
    const removes: string[] = [];
    verdict.checked.forEach((problem, i) => {
      names[`#s${i}`] = sinceAttr(problem);
      names[`#d${i}`] = detailAttr(problem);
      const detail = verdict.found[problem];
      if (detail === undefined) {
        removes.push(`#s${i}`, `#d${i}`);
        return;
      }
      // `since` stays from the first sighting; the detail follows what was seen last.
      sets.push(`#s${i} = if_not_exists(#s${i}, :u)`, `#d${i} = :d${i}`);
      values[`:d${i}`] = detail;
    });
    const out = await this.options.documents.send(
      new UpdateCommand({
        TableName: this.options.tableName,
        Key: { pk: problemsKey(lineId) },
        UpdateExpression: `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_OLD',
      }),
    );
    return problemsOfItem(out.Attributes);
  }

  async read(lineIds: string[]): Promise<Map<string, ActiveProblem[]>> {
    const result = new Map<string, ActiveProblem[]>();
    for (let i = 0; i < lineIds.length; i += 100) {
      let keys: Record<string, unknown>[] | undefined = lineIds.slice(i, i + 100).map((id) => ({ pk: problemsKey(id) }));
      for (let attempt = 0; keys && keys.length > 0 && attempt < 5; attempt++) {
        const out = await this.options.documents.send(new BatchGetCommand({ RequestItems: { [this.options.tableName]: { Keys: keys } } }));
        for (const item of out.Responses?.[this.options.tableName] ?? []) {
          const problems = problemsOfItem(item);
          if (problems.length > 0) result.set(String(item.pk).slice(problemsKey('').length), problems);
        }
        keys = out.UnprocessedKeys?.[this.options.tableName]?.Keys as Record<string, unknown>[] | undefined;
      }
    }
    return result;
  }
}
