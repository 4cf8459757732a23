"""File transfers both ways: images and files down (server streams), files up (unary or client stream).

The stubs' ``message_send_file_stream`` needs ``ServiceStub._stream_unary``, which betterproto 1.2.5
does not have, so the streams are grpclib requests made directly. Downloads stream at any size (the PyPI
``wechaty`` package cannot download images over ~20 KB).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpclib.exceptions
from grpclib.const import Cardinality
from wechaty_grpc.wechaty import puppet as pb

from bot.adapters.wechaty.connection import Link, own_task
from bot.adapters.wechaty.convert import filebox_json
from bot.adapters.wechaty.wire import CHUNK, TRANSFER_TIMEOUT, UNARY_FILE_LIMIT


class Transfers:
    def __init__(self, link: Link, *, log: logging.Logger) -> None:
        self._link = link
        self._log = log

    async def read_stream(self, route: str, request: Any, reply_type: type[Any]) -> bytes:
        """All data chunks of a server-streamed FileBox (``MessageImageStream``/``MessageFileStream``)."""
        link = self._link
        link.current()  # raises NotConnected before a task is made

        async def read() -> bytes:
            data = bytearray()
            async with link.request(
                route, Cardinality.UNARY_STREAM, type(request), reply_type, timeout=TRANSFER_TIMEOUT
            ) as stream:
                await stream.send_message(request, end=True)
                async for reply in stream:
                    data += reply.file_box_chunk.data
            return bytes(data)

        return await own_task(read())

    async def download(self, ref: str, *, image: bool) -> bytes:
        """The content of message ``ref``: an image through the HD image stream (falling back to the file
        stream when the service refuses it), anything else through the file stream; b"" when empty."""
        data = b""
        if image:
            try:
                data = await self.read_stream(
                    "/wechaty.Puppet/MessageImageStream",
                    pb.MessageImageStreamRequest(id=ref, type=pb.ImageType.IMAGE_TYPE_HD),
                    pb.MessageImageStreamResponse,
                )
            except grpclib.exceptions.GRPCError as exc:
                self._log.info(
                    "account %s: image stream for %s failed (%s); trying the file stream",
                    self._link.account,
                    ref,
                    self._link.describe(exc),
                )
        if not data:
            data = await self.read_stream(
                "/wechaty.Puppet/MessageFileStream",
                pb.MessageFileStreamRequest(id=ref),
                pb.MessageFileStreamResponse,
            )
        return data

    async def send_file(self, chat_id: str, path: Path) -> str | None:
        data = await asyncio.to_thread(path.read_bytes)
        name = path.name
        if len(data) <= UNARY_FILE_LIMIT:
            filebox = filebox_json(data, name)
            reply = await self._link.unary(
                lambda stub: stub.message_send_file(conversation_id=chat_id, filebox=filebox)
            )
            return reply.id or None
        request_type = pb.MessageSendFileStreamRequest
        link = self._link
        link.current()

        async def upload() -> str | None:
            # Conversation id, then a chunk with the file name, then data chunks (the service's order).
            async with link.request(
                "/wechaty.Puppet/MessageSendFileStream",
                Cardinality.STREAM_UNARY,
                request_type,
                pb.MessageSendFileStreamResponse,
                timeout=TRANSFER_TIMEOUT,
            ) as stream:
                await stream.send_message(request_type(conversation_id=chat_id))
                await stream.send_message(request_type(file_box_chunk=pb.FileBoxChunk(name=name)))
                for offset in range(0, len(data), CHUNK):
                    chunk = pb.FileBoxChunk(data=data[offset : offset + CHUNK])
                    await stream.send_message(request_type(file_box_chunk=chunk))
                await stream.end()
                reply = await stream.recv_message()
            return (reply.id or None) if reply is not None else None

        return await own_task(upload())
