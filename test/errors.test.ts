import { FAILURE_REASONS, PermanentError, RetryableError, UNFIXABLE_MEDIA_REASONS, isFailureReason, isRetryable, reasonOf } from '../src/errors';
import { REDRIVE_POLICY_REASON } from '../src/queue/dlq';

const SNAKE_CASE = /^[a-z0-9]+(_[a-z0-9]+)*$/;

describe('failure reasons: one typed union, snake_case', () => {
  it('spells every reason, and the redrive-policy reason the DLQ shows, in snake_case', () => {
    for (const reason of Object.keys(FAILURE_REASONS)) expect(reason).toMatch(SNAKE_CASE);
    expect(REDRIVE_POLICY_REASON).toMatch(SNAKE_CASE);
    expect(REDRIVE_POLICY_REASON).toBe('redrive_max_receives');
  });

  it('marks each reason retryable or permanent, and the error classes agree', () => {
    for (const [reason, kind] of Object.entries(FAILURE_REASONS)) {
      expect(['retryable', 'permanent']).toContain(kind);
      expect(isFailureReason(reason)).toBe(true);
    }
    expect(isRetryable(new RetryableError('bird_unavailable', 'x'))).toBe(true);
    expect(isRetryable(new PermanentError('bird_rejected_403', 'x'))).toBe(false);
    expect(isFailureReason('bird_rejected_404')).toBe(true);
    for (const old of ['claim-check-invalid', 'dlq-unavailable', 'redrive-max-receives', 'bird_rejected_', 'nope']) expect(isFailureReason(old)).toBe(false);
  });

  it('media failures a redrive cannot fix are permanent ones; an unknown error has the reason unexpected_error', () => {
    for (const reason of UNFIXABLE_MEDIA_REASONS) expect(FAILURE_REASONS[reason]).toBe('permanent');
    expect(UNFIXABLE_MEDIA_REASONS).not.toContain('media_token_rejected');
    expect(reasonOf(new TypeError('boom'))).toBe('unexpected_error');
    expect(reasonOf(new PermanentError('line_invalid', 'x'))).toBe('line_invalid');
  });
});
