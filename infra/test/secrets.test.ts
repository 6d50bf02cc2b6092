import type { Template } from 'aws-cdk-lib/assertions';
import { environmentOf, resourcesOfType, defaultTemplate, taskDefinitionFor } from './template';

let template: Template;
beforeAll(() => {
  template = defaultTemplate();
});

function secretIdNamed(name: string): string {
  const found = Object.entries(resourcesOfType(template, 'AWS::SecretsManager::Secret')).find(
    ([, s]) => s.Properties.Name === `wa-ingress/gateway/${name}`,
  );
  if (!found) throw new Error(`no secret ${name}`);
  return found[0];
}

describe('gateway secrets', () => {
  it('are three Secrets Manager secrets outside the per-line prefix, retained, with no value in the template', () => {
    const secrets = resourcesOfType(template, 'AWS::SecretsManager::Secret');
    expect(Object.values(secrets).map((s) => s.Properties.Name).sort()).toEqual([
      'wa-ingress/gateway/WHATSAPP_ACCESS_TOKEN',
      'wa-ingress/gateway/WHATSAPP_APP_SECRETS',
      'wa-ingress/gateway/WHATSAPP_VERIFY_TOKEN',
    ]);
    for (const [id, secret] of Object.entries(secrets)) {
      expect(secret.Properties.SecretString).toBeUndefined();
      expect(secret.Properties.GenerateSecretString).toBeDefined();
      expect((template.toJSON().Resources[id] as { DeletionPolicy?: string }).DeletionPolicy).toBe('Retain');
    }
  });

  it.each([
    ['ingress', ['WHATSAPP_APP_SECRETS', 'WHATSAPP_VERIFY_TOKEN']],
    ['worker', ['WHATSAPP_ACCESS_TOKEN']],
  ])('%s: secrets are injected through ECS `secrets`, by ARN', (role, names) => {
    const container = taskDefinitionFor(template, role).container;
    expect((container.Secrets ?? []).map((s) => s.Name).sort()).toEqual(names);
    for (const s of container.Secrets ?? []) expect(s.ValueFrom).toEqual({ Ref: secretIdNamed(s.Name) });
  });
});

describe('plain environment', () => {
  it.each(['ingress', 'worker'])('%s: carries no secret', (role) => {
    const env = environmentOf(taskDefinitionFor(template, role).container);
    const secretLooking = Object.keys(env).filter((name) => /SECRET|TOKEN|PASSWORD|ACCESS_KEY|CREDENTIAL/i.test(name));
    expect(secretLooking).toEqual([]);
    // Values are literals the brief lists or references to resources, never a secret's value.
    for (const value of Object.values(env)) {
      expect(JSON.stringify(value)).not.toMatch(/SecretString|secretsmanager|resolve:/);
    }
  });

  it('no literal secret appears anywhere in the template', () => {
    const text = JSON.stringify(template.toJSON());
    expect(text).not.toMatch(/\{\{resolve:secretsmanager/);
    expect(text).not.toMatch(/"SecretString"/);
    expect(text).not.toMatch(/AKIA[0-9A-Z]{16}/);
  });
});
