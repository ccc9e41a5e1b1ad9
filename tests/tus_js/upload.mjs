// tus-js-client, unchanged, in Node: upload one file to a tus endpoint.
//
//   node upload.mjs ENDPOINT FILE CHUNK_SIZE [UPLOAD_URL]
//
// With UPLOAD_URL the upload resumes there (HEAD, then PATCH from the offset it gives).
// Prints JSON lines: {"event":"url"}, {"event":"chunk"} per PATCH the server acknowledged,
// then {"event":"success"} (exit 0) or {"event":"error"} (exit 1). TUS_PAUSE_MS slows
// each PATCH down (so a test can kill the process mid-upload); TUS_HEADERS is a JSON
// object of extra request headers (an API key, for example).
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { Upload } from 'tus-js-client'

const [endpoint, file, chunkSize, uploadUrl] = process.argv.slice(2)
if (!endpoint || !file || !chunkSize) {
  console.error('usage: node upload.mjs ENDPOINT FILE CHUNK_SIZE [UPLOAD_URL]')
  process.exit(2)
}
const pauseMs = Number(process.env.TUS_PAUSE_MS || 0)
const say = (event, fields) => console.log(JSON.stringify({ event, ...fields }))
const data = await readFile(file)
let documentId = null

const upload = new Upload(data, {
  endpoint,
  uploadUrl: uploadUrl || null,
  chunkSize: Number(chunkSize),
  retryDelays: [], // a failure ends the run: the test decides what happens next
  storeFingerprintForResuming: false,
  headers: JSON.parse(process.env.TUS_HEADERS || '{}'),
  metadata: { filename: basename(file), filetype: 'application/pdf' },
  onUploadUrlAvailable () { say('url', { url: upload.url }) },
  async onBeforeRequest (req) {
    if (pauseMs && req.getMethod() === 'PATCH') await new Promise((resolve) => setTimeout(resolve, pauseMs))
  },
  onAfterResponse (req, res) {
    documentId = res.getHeader('Upload-Document-Id') || documentId
  },
  onChunkComplete (size, accepted, total) { say('chunk', { accepted, total }) },
  onSuccess () {
    say('success', { url: upload.url, document_id: documentId })
    process.exit(0)
  },
  onError (error) {
    say('error', { message: String(error && error.message ? error.message : error) })
    process.exit(1)
  }
})
upload.start()
