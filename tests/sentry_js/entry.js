// Bundled by esbuild into the test page: @sentry/browser as a page script.
import * as Sentry from '@sentry/browser';
window.Sentry = Sentry;
