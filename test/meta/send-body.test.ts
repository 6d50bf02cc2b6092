import { checkSendBody } from '../../src/meta/send-body';
import { classifySendError, parseGraphError, permanentReason } from '../../src/meta/send-errors';

const buttons = (n: number, title = 'Yes') => Array.from({ length: n }, (_, i) => ({ type: 'reply', reply: { id: `b${i}`, title: `${title}${i}`.slice(0, Math.max(title.length, 1) + 1) } }));

describe('checkSendBody: Meta send bodies without `to`', () => {
  it.each([
    ['text', { type: 'text', text: { body: 'hi', preview_url: true } }],
    ['text at 4096', { type: 'text', text: { body: 'x'.repeat(4096) } }],
    ['image by link', { type: 'image', image: { link: 'https://example.com/a.jpg', caption: 'look' } }],
    ['image by id', { type: 'image', image: { id: '1234567890' } }],
    ['audio by id', { type: 'audio', audio: { id: '42' } }],
    ['video', { type: 'video', video: { link: 'https://example.com/v.mp4' } }],
    ['document with filename', { type: 'document', document: { link: 'https://example.com/a.pdf', filename: 'a.pdf' } }],
    ['sticker', { type: 'sticker', sticker: { id: '77' } }],
    ['3 reply buttons', { type: 'interactive', interactive: { type: 'button', body: { text: 'pick' }, action: { buttons: buttons(3) } } }],
    [
      'list',
      {
        type: 'interactive',
        interactive: { type: 'list', body: { text: 'menu' }, action: { button: 'Options', sections: [{ title: 'A', rows: [{ id: 'r1', title: 'Row 1', description: 'first' }] }] } },
      },
    ],
    ['cta_url', { type: 'interactive', interactive: { type: 'cta_url', body: { text: 'see' }, action: { name: 'cta_url', parameters: { display_text: 'Open', url: 'https://example.com' } } } }],
    ['template', { type: 'template', template: { name: 'hello_world', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [] }] } }],
    ['reaction', { type: 'reaction', reaction: { message_id: 'wamid.abc', emoji: '👍' } }],
    ['location', { type: 'location', location: { latitude: 52.5, longitude: 13.4, name: 'Berlin' } }],
    ['contacts', { type: 'contacts', contacts: [{ name: { formatted_name: 'Ada' }, phones: [{ phone: '+1 555' }] }] }],
    ['reply context and messaging_product', { messaging_product: 'whatsapp', recipient_type: 'individual', type: 'text', text: { body: 'x' }, context: { message_id: 'wamid.1' } }],
  ])('accepts %s', (_name, body) => {
    expect(checkSendBody(body)).toEqual({ ok: true, body });
  });

  it.each([
    ['not an object', 'hello', '(body)'],
    ['no type', { text: { body: 'x' } }, 'type'],
    ['text over 4096', { type: 'text', text: { body: 'x'.repeat(4097) } }, 'text.body'],
    ['media with neither', { type: 'audio', audio: {} }, 'audio.link'],
    ['media with both', { type: 'sticker', sticker: { id: '1', link: 'https://e.com/s.webp' } }, 'sticker.link'],
    ['media http link', { type: 'video', video: { link: 'http://e.com/v.mp4' } }, 'video.link'],
    ['caption over 1024', { type: 'image', image: { id: '1', caption: 'x'.repeat(1025) } }, 'image.caption'],
    ['zero buttons', { type: 'interactive', interactive: { type: 'button', body: { text: 'b' }, action: { buttons: [] } } }, 'interactive.action.buttons'],
    ['4 buttons', { type: 'interactive', interactive: { type: 'button', body: { text: 'b' }, action: { buttons: buttons(4) } } }, 'interactive.action.buttons'],
    ['button body over 1024', { type: 'interactive', interactive: { type: 'button', body: { text: 'x'.repeat(1025) }, action: { buttons: buttons(1) } } }, 'interactive.body.text'],
    [
      'list with 11 rows',
      {
        type: 'interactive',
        interactive: { type: 'list', body: { text: 'm' }, action: { button: 'Go', sections: [{ title: 'A', rows: Array.from({ length: 11 }, (_, i) => ({ id: `r${i}`, title: `R${i}` })) }] } },
      },
      'interactive.action.sections',
    ],
    [
      'list row title over 24',
      { type: 'interactive', interactive: { type: 'list', body: { text: 'm' }, action: { button: 'Go', sections: [{ rows: [{ id: 'r', title: 'x'.repeat(25) }] }] } } },
      'interactive.action.sections.0.rows.0.title',
    ],
    [
      'cta_url over http',
      { type: 'interactive', interactive: { type: 'cta_url', body: { text: 's' }, action: { name: 'cta_url', parameters: { display_text: 'Open', url: 'http://e.com' } } } },
      'interactive.action.parameters.url',
    ],
    ['unknown interactive type', { type: 'interactive', interactive: { type: 'carousel' } }, 'interactive.type'],
    ['template without language', { type: 'template', template: { name: 'x' } }, 'template.language'],
    ['latitude out of range', { type: 'location', location: { latitude: 91, longitude: 0 } }, 'location.latitude'],
    ['no contacts', { type: 'contacts', contacts: [] }, 'contacts'],
    ['wrong messaging_product', { messaging_product: 'sms', type: 'text', text: { body: 'x' } }, 'messaging_product'],
    ['biz_opaque_callback_data set by the caller', { type: 'text', text: { body: 'x' }, biz_opaque_callback_data: 'mine' }, 'biz_opaque_callback_data'],
  ])('refuses %s, naming %s', (_name, body, path) => {
    const check = checkSendBody(body);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.issues.map((i) => i.path)).toContain(path);
  });
});

describe('classifySendError: by error.code, not the HTTP status', () => {
  it.each([
    [130429, 400, 'rate_limited'],
    [80007, 400, 'rate_limited'],
    [4, 400, 'rate_limited'],
    [131056, 400, 'pair_limited'],
    [190, 401, 'token'],
    [10, 403, 'token'],
    [200, 403, 'token'],
    [131047, 400, 'permanent'],
    [131026, 400, 'permanent'],
    [131051, 400, 'permanent'],
    [131053, 400, 'permanent'],
    [131008, 400, 'permanent'],
    [131009, 400, 'permanent'],
    [100, 400, 'permanent'],
    [132000, 400, 'permanent'],
    [132016, 400, 'permanent'],
    [131000, 500, 'ambiguous'],
    [131016, 503, 'ambiguous'],
    [2, 503, 'ambiguous'],
    // The code wins over a misleading status…
    [131047, 500, 'permanent'],
    [130429, 200, 'rate_limited'],
    // …and without a code, the status decides.
    [undefined, 502, 'ambiguous'],
    [undefined, 429, 'rate_limited'],
    [undefined, 401, 'token'],
    [undefined, 400, 'permanent'],
    [999999, 500, 'ambiguous'],
    [999999, 400, 'permanent'],
  ] as const)('code %s with HTTP %s is %s', (code, status, expected) => {
    expect(classifySendError(code, status)).toBe(expected);
  });

  it('names the reasons operators act on', () => {
    expect(permanentReason(131047)).toBe('outside_customer_service_window');
    expect(permanentReason(132001)).toBe('template_error');
    expect(permanentReason(131009)).toBe('graph_error_131009');
    expect(permanentReason(undefined)).toBe('graph_rejected');
  });

  it('reads Meta\'s error body', () => {
    expect(parseGraphError({ error: { message: 'm', type: 'OAuthException', code: 131047, error_subcode: 2494010, fbtrace_id: 'A' } })).toEqual({
      message: 'm',
      type: 'OAuthException',
      code: 131047,
      error_subcode: 2494010,
      error_user_title: undefined,
      fbtrace_id: 'A',
    });
    expect(parseGraphError({ nope: 1 })).toBeUndefined();
    expect(parseGraphError(null)).toBeUndefined();
  });
});
