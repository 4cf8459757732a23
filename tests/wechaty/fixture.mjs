#!/usr/bin/env node
/**
 * Test fixture: the official Wechaty puppet service (PuppetServer) over a PuppetMock world,
 * plus a tiny HTTP control API so Python tests can make contacts speak and read what the bot sent.
 *
 *   node fixture.mjs --grpc-port 8788 --http-port 8789 --token test-token [--tls]
 *
 * Prints one line `READY {"grpc":…,"http":…,"tls":…}` on stdout once both ports listen.
 * See README.md in this folder for the control API.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { FileBox } from 'file-box'
import * as PUPPET from 'wechaty-puppet'
import { PuppetMock, mock } from 'wechaty-puppet-mock'
import { PuppetServer, log } from 'wechaty-puppet-service'

const { values: args } = parseArgs({
  options: {
    'grpc-port': { type: 'string', default: '8788' },
    'http-port': { type: 'string', default: '8789' },
    token: { type: 'string', default: 'villagewatch-test-token' },
    tls: { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'warn' },
    'parent-pid': { type: 'string' },
  },
})

log.level(args['log-level'])
// grpc-js warns that `server.start()` is no longer needed; PuppetServer still calls it. Not ours to fix.
process.noDeprecation = true

// The Wechaty community CA that signs the "insecure" server certificate PuppetServer uses for TLS.
// Not exported by the package (its `exports` map), so loaded by file URL; served at GET /tls-ca.
const { TLS_CA_CERT } = await import(
  new URL('./node_modules/wechaty-puppet-service/dist/esm/src/auth/ca.js', import.meta.url).href
)

const MessageType = PUPPET.types.Message

/* ------------------------------------------------------------------ the world */

const BOT = { id: 'wxid_villagewatch_bot', name: '石桥村监督服务助手' }
const PEOPLE = [
  { id: 'wxid_gaomoulin', name: '高某林', role: 'villager' },
  { id: 'wxid_zhangsan', name: '张三', role: 'villager' },
  { id: 'wxid_wangdama', name: '王大妈', role: 'villager' },
  { id: 'wxid_lishuji', name: '李书记', role: 'cadre' },
  { id: 'wxid_wangzhuren', name: '王主任', role: 'cadre' },
  { id: 'wxid_zhangwanggeyuan', name: '张网格员', role: 'cadre' },
]
const ROOM = { id: 'shiqiao-supervision@chatroom', topic: '石桥村监督服务群' }

const mocker = new mock.Mocker()
const contactMocks = new Map()
for (const person of [BOT, ...PEOPLE]) {
  contactMocks.set(person.id, mocker.createContact({
    id: person.id,
    name: person.name,
    phone: [],
    alias: undefined,
    weixin: undefined,
  }))
}
const roomMock = mocker.createRoom({
  id: ROOM.id,
  topic: ROOM.topic,
  memberIdList: [BOT.id, ...PEOPLE.map(p => p.id)],
  adminIdList: [],
  ownerId: PEOPLE.find(p => p.role === 'cadre').id,
})
void roomMock

const puppet = new PuppetMock({ mocker })

/* ------------------------------------------------------- patches over the mock */

/** Extra per-message data the stock mock does not keep: URL-link and mini-program payloads. */
const urlPayloads = new Map()
const miniProgramPayloads = new Map()
/** Everything the bot sent, oldest first. */
const sent = []

/**
 * Put a message into the mock world and emit the `message` event, the way `ContactMock.say().to()`
 * does, but with the type, mentions and id under our control (the stock `say()` guesses the type from
 * the file name and only accepts FileBoxes it can `toJSON()`: Base64 or URL).
 */
function emitMessage ({ talkerId, roomId, listenerId, text, type, mentionIdList, fileBox, urlLink, miniProgram }) {
  const id = 'msg_' + crypto.randomUUID().replace(/-/g, '')
  if (fileBox) {
    mocker.cacheFileBoxPayload.set(id, fileBox.toJSON())
  }
  if (urlLink) {
    urlPayloads.set(id, urlLink)
  }
  if (miniProgram) {
    miniProgramPayloads.set(id, miniProgram)
  }
  const payload = {
    id,
    talkerId,
    timestamp: Date.now(),
    type,
    text: text ?? '',
    ...(fileBox ? { filename: fileBox.name } : {}),
    ...(roomId ? { roomId, mentionIdList: mentionIdList ?? [] } : { listenerId }),
  }
  mocker.MessageMock.create(payload)
  puppet.emit('message', { messageId: id })
  return id
}

function conversationOf (conversationId) {
  if (mocker.cacheRoomPayload.has(conversationId)) {
    return { roomId: conversationId }
  }
  if (mocker.cacheContactPayload.has(conversationId)) {
    return { listenerId: conversationId }
  }
  throw new Error(`unknown conversation id "${conversationId}"`)
}

// Stock messageSendText/File return no message id and drop the mention ids: record and echo instead.
puppet.messageSendText = async (conversationId, text, mentionIdList = []) => {
  if (!puppet.isLoggedIn) throw new Error('not logged in')
  const conversation = conversationOf(conversationId)
  const id = emitMessage({
    talkerId: puppet.currentUserId,
    ...conversation,
    text,
    type: MessageType.Text,
    mentionIdList,
  })
  sent.push({
    id,
    kind: 'text',
    conversationId,
    inRoom: !!conversation.roomId,
    text,
    mentionIds: [...mentionIdList],
    at: Date.now(),
  })
  return id
}

puppet.messageSendFile = async (conversationId, fileBox) => {
  if (!puppet.isLoggedIn) throw new Error('not logged in')
  const conversation = conversationOf(conversationId)
  // The file may arrive as a Base64 FileBox (MessageSendFile) or a Stream one (MessageSendFileStream):
  // read it fully, keep it as Base64 so it is serialisable like any other message attachment.
  const buffer = await fileBox.toBuffer()
  const stored = FileBox.fromBase64(buffer.toString('base64'), fileBox.name)
  const ext = path.extname(fileBox.name || '').toLowerCase()
  const type = ['.jpg', '.jpeg', '.png', '.gif', '.webp'].includes(ext) ? MessageType.Image : MessageType.Attachment
  const id = emitMessage({ talkerId: puppet.currentUserId, ...conversation, type, fileBox: stored })
  sent.push({
    id,
    kind: 'file',
    conversationId,
    inRoom: !!conversation.roomId,
    name: fileBox.name,
    size: buffer.length,
    sha256: crypto.createHash('sha256').update(buffer).digest('hex'),
    at: Date.now(),
  })
  return id
}

// Stock messageImage returns a fake QR-code FileBox: return the real image the contact sent.
puppet.messageImage = async (messageId, _imageType) => puppet.messageFile(messageId)

// Stock messageUrl returns a fixed mock link: return the link the contact sent.
const stockMessageUrl = puppet.messageUrl.bind(puppet)
puppet.messageUrl = async (messageId) => urlPayloads.get(messageId) ?? stockMessageUrl(messageId)
const stockMessageMiniProgram = puppet.messageMiniProgram.bind(puppet)
puppet.messageMiniProgram = async (messageId) => miniProgramPayloads.get(messageId) ?? stockMessageMiniProgram(messageId)

/* ------------------------------------------------------------ the puppet service */

const grpcEndpoint = `127.0.0.1:${args['grpc-port']}`

await puppet.start()
mocker.login(contactMocks.get(BOT.id))

const server = new PuppetServer({
  endpoint: grpcEndpoint,
  puppet,
  token: args.token,
  // Plaintext unless --tls; the same switch as WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER=true.
  tls: { disable: !args.tls },
})
await server.start()

/* ------------------------------------------------------------ the control API */

function readJson (req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      try {
        resolve(body ? JSON.parse(body) : {})
      } catch (e) {
        reject(e)
      }
    })
    req.on('error', reject)
  })
}

function reply (res, status, obj) {
  const body = JSON.stringify(obj)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(body)
}

function say (body) {
  const talkerId = body.from
  if (!mocker.cacheContactPayload.has(talkerId)) {
    throw new Error(`unknown contact "${talkerId}"`)
  }
  let conversation
  if (body.room) {
    const roomId = body.room === true ? ROOM.id : body.room
    conversation = { roomId }
  } else {
    conversation = { listenerId: body.to || BOT.id }
  }
  let type = MessageType.Text
  let fileBox
  let urlLink
  let miniProgram
  if (body.image_base64 !== undefined) {
    type = MessageType.Image
    fileBox = FileBox.fromBase64(body.image_base64, body.name || 'photo.jpg')
  } else if (body.file_base64 !== undefined) {
    type = body.voice ? MessageType.Audio : MessageType.Attachment
    fileBox = FileBox.fromBase64(body.file_base64, body.name || 'file.dat')
  } else if (body.url) {
    type = MessageType.Url
    urlLink = body.url
  } else if (body.mini_program) {
    type = MessageType.MiniProgram
    miniProgram = body.mini_program
  }
  if (body.type !== undefined) {
    type = body.type
  }
  return emitMessage({
    talkerId,
    ...conversation,
    text: body.text,
    type,
    mentionIdList: body.mentions,
    fileBox,
    urlLink,
    miniProgram,
  })
}

const httpServer = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost')
    if (req.method === 'GET' && url.pathname === '/health') {
      return reply(res, 200, { ok: true, loggedIn: puppet.isLoggedIn })
    }
    if (req.method === 'GET' && url.pathname === '/world') {
      return reply(res, 200, { bot: BOT, people: PEOPLE, room: ROOM, token: args.token, grpc: grpcEndpoint })
    }
    if (req.method === 'GET' && url.pathname === '/tls-ca') {
      // TLS mode: the server certificate's common name is "insecure" (use it as the TLS server name).
      return reply(res, 200, { ca: TLS_CA_CERT, serverName: 'insecure' })
    }
    if (req.method === 'POST' && url.pathname === '/say') {
      const id = say(await readJson(req))
      return reply(res, 200, { id })
    }
    if (req.method === 'POST' && url.pathname === '/emit') {
      // Emit a `message` event for any id, even one without a payload (tests a payload that fails to load).
      const body = await readJson(req)
      puppet.emit('message', { messageId: body.messageId })
      return reply(res, 200, { id: body.messageId })
    }
    if (req.method === 'GET' && url.pathname === '/sent') {
      return reply(res, 200, { sent })
    }
    if (req.method === 'POST' && url.pathname === '/sent/clear') {
      sent.length = 0
      return reply(res, 200, { ok: true })
    }
    return reply(res, 404, { error: `no route ${req.method} ${url.pathname}` })
  } catch (e) {
    return reply(res, 400, { error: String(e && e.message || e) })
  }
})

await new Promise((resolve, reject) => {
  httpServer.once('error', reject)
  httpServer.listen(Number(args['http-port']), '127.0.0.1', resolve)
})

let stopping = false
async function shutdown (signal) {
  if (stopping) return
  stopping = true
  log.info('fixture', 'shutdown(%s)', signal)
  httpServer.close()
  try {
    await server.stop()
  } catch (e) {
    log.warn('fixture', 'server.stop() %s', e && e.message)
  }
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
// A test run that dies (or is killed) must not leave this service behind: exit when the parent goes.
if (args['parent-pid']) {
  const parentPid = Number(args['parent-pid'])
  setInterval(() => {
    try {
      process.kill(parentPid, 0)
    } catch {
      void shutdown('parent gone')
    }
  }, 1000).unref()
}
process.on('SIGINT', () => void shutdown('SIGINT'))

process.stdout.write('READY ' + JSON.stringify({ grpc: Number(args['grpc-port']), http: Number(args['http-port']), tls: args.tls }) + '\n')
