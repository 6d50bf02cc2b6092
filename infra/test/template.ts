import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { WaIngressStack, type WaIngressStackProps } from '../lib/wa-ingress-stack';

/** Synthesizes the stack the way bin/wa-ingress.ts does (env-agnostic, no lookups). */
export function synth(props: WaIngressStackProps = {}): { stack: WaIngressStack; template: Template } {
  const app = new App();
  const stack = new WaIngressStack(app, 'WaIngress', props);
  return { stack, template: Template.fromStack(stack) };
}

/** Set by global-setup.ts: where the default stack's synthesized template was written. */
export const SYNTHESIZED_TEMPLATE_ENV = 'WA_INGRESS_SYNTHESIZED_TEMPLATE';

/** The default stack's template, synthesized once per run by global-setup.ts (or here when run without it). */
export function defaultTemplate(): Template {
  const path = process.env[SYNTHESIZED_TEMPLATE_ENV];
  return path ? Template.fromJSON(JSON.parse(readFileSync(path, 'utf8'))) : synth().template;
}

type Json = Record<string, unknown>;
export interface CfnResource {
  Type: string;
  Properties: Json;
  Condition?: string;
}

export function resourcesOfType(template: Template, type: string): Record<string, CfnResource> {
  return template.findResources(type) as Record<string, CfnResource>;
}

export function onlyResource(template: Template, type: string): [string, CfnResource] {
  const entries = Object.entries(resourcesOfType(template, type));
  if (entries.length !== 1) throw new Error(`expected one ${type}, found ${entries.length}`);
  return entries[0]!;
}

export interface ContainerDefinition {
  Command?: string[];
  Environment?: { Name: string; Value: unknown }[];
  Secrets?: { Name: string; ValueFrom: unknown }[];
  PortMappings?: { ContainerPort: number }[];
  Image?: unknown;
  LogConfiguration?: { LogDriver: string; Options: Json };
  StopTimeout?: number;
}

/** The task definition whose single container runs `role`, with its logical id and container. */
export function taskDefinitionFor(template: Template, role: string): { id: string; props: Json; container: ContainerDefinition } {
  for (const [id, resource] of Object.entries(resourcesOfType(template, 'AWS::ECS::TaskDefinition'))) {
    const containers = resource.Properties.ContainerDefinitions as ContainerDefinition[];
    if (containers.length === 1 && JSON.stringify(containers[0]!.Command) === JSON.stringify([role])) {
      return { id, props: resource.Properties, container: containers[0]! };
    }
  }
  throw new Error(`no task definition runs ${role}`);
}

/** The ECS service running the task definition for `role`. */
export function serviceFor(template: Template, role: string): { id: string; props: Json } {
  const task = taskDefinitionFor(template, role);
  const found = Object.entries(resourcesOfType(template, 'AWS::ECS::Service')).find(
    ([, s]) => JSON.stringify(s.Properties.TaskDefinition) === JSON.stringify({ Ref: task.id }),
  );
  if (!found) throw new Error(`no service for ${role}`);
  return { id: found[0], props: found[1].Properties };
}

export function environmentOf(container: ContainerDefinition): Record<string, unknown> {
  return Object.fromEntries((container.Environment ?? []).map((e) => [e.Name, e.Value]));
}

/** Logical id of the role a `Fn::GetAtt [role, Arn]` points to. */
export function roleIdOf(arn: unknown): string {
  const getAtt = (arn as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
  if (!getAtt || getAtt[1] !== 'Arn') throw new Error(`not a role ARN reference: ${JSON.stringify(arn)}`);
  return getAtt[0];
}

export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource?: unknown;
  Principal?: unknown;
  Condition?: unknown;
}

/** Every statement of every AWS::IAM::Policy attached to the role. */
export function statementsOfRole(template: Template, roleId: string): Statement[] {
  const statements: Statement[] = [];
  for (const policy of Object.values(resourcesOfType(template, 'AWS::IAM::Policy'))) {
    const roles = (policy.Properties.Roles as unknown[]) ?? [];
    if (roles.some((r) => JSON.stringify(r) === JSON.stringify({ Ref: roleId }))) {
      statements.push(...((policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement ?? []));
    }
  }
  return statements;
}

export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

export function resourcesOf(statement: Statement): unknown[] {
  if (statement.Resource === undefined) return [];
  return Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
}

/** The inbound (webhook) queues, told from the outbound ones by their construct path. */
export const isInboundQueue = (_r: CfnResource, id: string): boolean => id.startsWith('QueuesQueue');
export const isInboundDlq = (_r: CfnResource, id: string): boolean => id.startsWith('QueuesDeadLetterQueue');
export const isTurnQueue = (_r: CfnResource, id: string): boolean => id.startsWith('QueuesTurnTimerQueue');

/** `{ "Fn::GetAtt": [id, attr] }` for the only resource of a type matching a predicate. */
export function logicalIdOf(template: Template, type: string, match: (r: CfnResource, id: string) => boolean = () => true): string {
  const ids = Object.entries(resourcesOfType(template, type))
    .filter(([id, r]) => match(r, id))
    .map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one matching ${type}, found ${ids.length}`);
  return ids[0]!;
}
