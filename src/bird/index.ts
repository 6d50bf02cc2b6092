export type { BirdAnswer, BirdClient, BirdDelivery, BirdTransport, CircuitStateChange, CircuitStateName, DeliveredMedia } from './delivery';
export { FLOW_SIGNATURE_HEADER, buildFlowBody, encodeFlowBody, signFlowBody, type FlowBody } from './flow-request';
export {
  PHONE_IDENTIFIER_KEY,
  buildConversationMessageBody,
  buildCreateConversation,
  buildCreateConversationMessage,
  contactPhoneNumber,
  type ConversationMessageBody,
  type CreateConversation,
  type CreateConversationMessage,
} from './conversations-request';
export { parseRetryAfter } from './retry-after';
export { HttpBirdClient, createBirdClient, type BirdBreakerOptions, type BirdRetryOptions, type HttpBirdClientOptions } from './http-bird-client';
