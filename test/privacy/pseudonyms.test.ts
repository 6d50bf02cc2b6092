import { canonicalContact, contactDigest, eventHandle, lastFour, looksLikeEventHandle, wamidDigest } from '../../src/privacy/pseudonyms';

describe('pseudonyms', () => {
  const wamid = 'wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjVFNzREMzNGQzc1RTQ2RAA=';

  it('never contain what they stand for', () => {
    for (const value of [eventHandle(`msg#123456#${wamid}`), wamidDigest(wamid), contactDigest('+1 650 555 1234')]) {
      expect(value).not.toContain('6505551234');
      expect(value).not.toContain('HBgL');
    }
  });

  it('are stable, and one kind never equals another for the same input', () => {
    expect(wamidDigest(wamid)).toBe(wamidDigest(wamid));
    expect(eventHandle(wamid)).not.toBe(wamidDigest(wamid).replace('wd_', 'ev_'));
    expect(looksLikeEventHandle(eventHandle('status#x#sent'))).toBe(true);
    expect(looksLikeEventHandle('msg#1#wamid.x')).toBe(false);
  });

  it('find a contact however the number was typed, and show only its last four', () => {
    expect(canonicalContact('+1 650-555-1234')).toBe('16505551234');
    expect(contactDigest('+1 650-555-1234')).toBe(contactDigest('16505551234'));
    expect(contactDigest('16505551234')).not.toBe(contactDigest('16505551235'));
    expect(lastFour('+1 650 555 1234')).toBe('…1234');
    expect(lastFour('US.13491208655302741918')).toBe('…1918');
    expect(lastFour('12')).toBe('…');
  });
});
