// Uppy with @uppy/tus, as any app would set it up: nothing here is specific to this server
// except the endpoint. window.uppy and window.tus are there for the browser tests.
import Uppy from "@uppy/core";
import Dashboard from "@uppy/dashboard";
import Tus from "@uppy/tus";
import * as tus from "tus-js-client";
import "@uppy/core/css/style.min.css";
import "@uppy/dashboard/css/style.min.css";

const params = new URLSearchParams(location.search);
const key = params.get("key");
const headers = key ? { Authorization: `Bearer ${key}` } : {};

const uppy = new Uppy({ restrictions: { allowedFileTypes: [".pdf", "application/pdf"] } })
  .use(Dashboard, { inline: true, target: "#uppy", proudlyDisplayPoweredByUppy: false, height: 420 })
  .use(Tus, {
    endpoint: "/files/",
    headers,
    chunkSize: Number(params.get("chunk")) || 8 * 1024 * 1024,
    retryDelays: [0, 500, 1000, 2000, 3000, 5000, 8000],
  });

window.uppy = uppy;
window.tus = tus;
window.tusHeaders = headers;
