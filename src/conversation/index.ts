import type { AwsClients } from '../aws/clients';
import type { Config } from '../config/config';
import type { Registry } from '../observability/metrics';
import { ContactStates } from './contact-states';
import { DynamoContactStore } from './contact-store';

export { ContactStates, type ConversationView } from './contact-states';
export { DynamoContactStore, type ContactStore } from './contact-store';

/** The process's conversation state on DYNAMODB_CONTACTS_TABLE. */
export function createContactStates(config: Config, clients: AwsClients, registry: Registry): ContactStates {
  return new ContactStates({
    store: new DynamoContactStore({ documents: clients.documents, itemUpdates: clients.itemUpdates, tableName: config.dynamodb.contactsTable }),
    registry,
    cacheMs: config.contactState.cacheMs,
  });
}
