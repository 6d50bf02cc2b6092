import { chromiumPath } from '../support/chromium';

describe('the Chromium the browser tests drive', () => {
  it('is CHROMIUM_PATH when set (macOS, other distributions)', () => {
    expect(chromiumPath({ CHROMIUM_PATH: process.execPath })).toBe(process.execPath);
  });

  it('names CHROMIUM_PATH and the Debian command when the binary it names is missing', () => {
    expect(() => chromiumPath({ CHROMIUM_PATH: '/nowhere/chrome' })).toThrow(/CHROMIUM_PATH \(\/nowhere\/chrome\) is missing: on Debian `sudo apt-get install -y chromium`/);
  });

});
