// The order page: every order is a trace that starts here, in the browser.
import { DiagConsoleLogger, DiagLogLevel, SpanStatusCode, diag, trace } from '@opentelemetry/api';
import { ZoneContextManager } from '@opentelemetry/context-zone';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { FetchInstrumentation } from '@opentelemetry/instrumentation-fetch';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { WebTracerProvider } from '@opentelemetry/sdk-trace-web';

// The step's own allowlist.js (steps/ or solutions/step-07-browser/), which
// the bundler substitutes for this name: see package.json and the check.
import { propagationAllowlist } from 'stitch-allowlist';

async function start() {
  // The server decides what the page may talk to; nothing comes from the URL.
  const config = await (await fetch('/config.json')).json();

  // An export that fails says so in the console instead of losing spans quietly.
  diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

  // ANCHOR: provider
  const provider = new WebTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'frontend', 'stitch.step': 'step-07-browser' }),
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url: config.otlp_traces_url }), {
        scheduledDelayMillis: 200,
      }),
    ],
  });
  // Zone.js carries the active span across awaits (with an es2016 bundle,
  // where async/await compiles to promises the zone can follow).
  provider.register({ contextManager: new ZoneContextManager() });
  registerInstrumentations({
    instrumentations: [
      new FetchInstrumentation({
        propagateTraceHeaderCorsUrls: propagationAllowlist(config.propagate_to),
        // The exporter's own requests are not orders.
        ignoreUrls: propagationAllowlist([config.otlp_traces_url]),
      }),
    ],
  });
  // ANCHOR_END: provider

  const tracer = trace.getTracer('stitch-frontend');

  // ANCHOR: order
  /** One order: a root span here, the gateway's request under it, then the other calls. */
  function placeOrder() {
    return tracer.startActiveSpan('checkout', async (span) => {
      const result = { page_trace_id: span.spanContext().traceId, calls: [] };
      try {
        const response = await fetch('/orders', { method: 'POST' });
        if (!response.ok) throw new Error(`gateway answered ${response.status}`);
        const order = await response.json();
        span.setAttribute('order.id', order.order_id);
        Object.assign(result, order);
        for (const call of config.calls) {
          try {
            const answer = await fetch(call.url);
            result.calls.push({ name: call.name, status: answer.status });
          } catch (err) {
            // A CORS refusal: the browser blocked the request or its answer.
            result.calls.push({ name: call.name, blocked: true, error: String(err) });
          }
        }
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
        result.error = String(err);
      } finally {
        span.end();
      }
      show(result);
      return result;
    });
  }
  // ANCHOR_END: order

  document.getElementById('order').addEventListener('click', () => placeOrder());
  // The fetch instrumentation ends each span up to 300 ms after its response
  // (it waits for the resource timing): flushing sooner loses the last ones.
  const flush = async () => {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await provider.forceFlush();
  };
  window.stitch = { placeOrder, flush };
  document.body.dataset.ready = 'true';
}

function show(result) {
  const row = document.createElement('tr');
  const calls = result.calls.map((call) => `${call.name}: ${call.blocked ? 'blocked' : call.status}`).join(', ');
  for (const text of [result.order_id ?? result.error, result.page_trace_id, result.trace_id ?? '', calls]) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.append(cell);
  }
  const rows = document.getElementById('orders');
  rows.prepend(row);
  while (rows.children.length > 8) rows.lastChild.remove();
  document.getElementById('count').textContent = String(Number(document.getElementById('count').textContent) + 1);
}

start().catch((err) => {
  document.getElementById('status').textContent = `cannot start: ${err}`;
});
