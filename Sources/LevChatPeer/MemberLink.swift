import LevChatCore
import LevChatTransport
import Logging
import NIOCore

/// One member's link at the host, both ways, on the room's event loop (Docs/ARCHITECTURE.md, "The
/// host's hot path"). Each frame is opened, decoded and handed to the `HostService` where NIO read
/// it, with no task in between; the host's frames for this member go out from here. So a line is
/// read, sequenced and written to every member in one pass of the loop, and the lines of one read
/// round reach each member in one write (`HostService.flushAll`).
///
/// A chat's signature is not checked here at all: the join signed this link (`LinkProof`), and
/// members check every line end to end. The one exception is a `push` (a member's records after a
/// host change): their Ed25519 signatures are checked off the loop, about 0.1 ms each. Until the
/// verdicts are back, this link's later messages wait here in order and its reads stop, so what
/// waits is bounded by one read.
final class MemberLink: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let id: ConnectionID
    let remoteHost: String
    /// Seals what the host sends on this link alone, with the link's key.
    var sealer: RecordSealer
    /// In the host's list of links to flush at the end of this loop tick.
    var flushPending = false
    private let host: HostService
    private let roomID: RoomID
    private var records: RecordReader
    private let logger: Logger
    private var context: ChannelHandlerContext?
    /// Messages read while a push is checked, oldest first.
    private var held = CircularBuffer<WireMessage>()
    private var checking = false
    /// The link ended after messages that still wait for a check: its end waits for them too.
    private var endWanted = false
    private var failed = false
    private var ended = false
    /// This handler got a frame from the pipeline (see `readBeforeHandover`).
    private var readOwnFrame = false

    init(host: HostService, id: ConnectionID, roomID: RoomID, remoteHost: String, sealer: RecordSealer, records: RecordReader,
         logger: Logger) {
        self.host = host
        self.id = id
        self.roomID = roomID
        self.remoteHost = remoteHost
        self.sealer = sealer
        self.records = records
        self.logger = logger
    }

    // MARK: The host's side

    /// The connection, while the link is in its pipeline.
    var channel: (any Channel)? { context?.channel }

    /// Whether the link takes more (its unsent bytes are under the high-water mark).
    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// Writes a whole frame, unflushed, from this handler down: no other handler of the
    /// connection has any part in what the host sends.
    func write(_ frame: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    func flush() {
        flushPending = false
        context?.flush()
    }

    func close() {
        context?.close(promise: nil)
    }

    // MARK: NIO's side

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// A frame NIO read before this handler was in place, passed on by the connection's task.
    /// Those come before anything this handler read itself; one that comes after it read (a peer
    /// that sent on before its welcome, which no member does) cannot be put in order, and the link
    /// ends. False when the link is over.
    func readBeforeHandover(_ frame: ByteBuffer) -> Bool {
        guard let context, !failed else { return false }
        guard !readOwnFrame else {
            fail(context, because: "it sent on before its welcome")
            return false
        }
        read(frame, context)
        return !failed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readOwnFrame = true
        read(unwrapInboundIn(data), context)
    }

    private func read(_ frame: ByteBuffer, _ context: ChannelHandlerContext) {
        guard !failed else { return }
        let message: WireMessage
        do {
            message = try frame.withUnsafeReadableBytes { bytes throws(LinkError) in try records.message(fromRecord: bytes) }
        } catch {
            fail(context, because: error.description)
            return
        }
        if checking {
            held.append(message)
        } else {
            deliver(message, on: context.eventLoop)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if checking {
            endWanted = true
        } else {
            end()
        }
        // The `NIOAsyncChannel` behind this handler ends its stream, and its task returns.
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A frame the decoder refused (too long): this link alone ends.
        fail(context, because: "\(error)")
    }

    private func deliver(_ message: WireMessage, on loop: any EventLoop) {
        let id = self.id
        guard case .push(let push) = message else {
            host.assumeIsolated { host in host.received(message, from: id, pushVerdicts: nil) }
            return
        }
        checking = true
        readsPaused(true)
        let roomID = self.roomID
        let link = NIOLoopBound(self, eventLoop: loop)
        Task {
            let verdicts = push.verdicts(room: roomID)
            loop.execute { link.value.checked(push, verdicts: verdicts, on: loop) }
        }
    }

    /// The push's verdicts are back: it goes to the room, then what waited behind it, up to the
    /// next push.
    private func checked(_ push: Push, verdicts: [Bool], on loop: any EventLoop) {
        checking = false
        if !failed {
            let id = self.id
            host.assumeIsolated { host in host.received(.push(push), from: id, pushVerdicts: verdicts) }
            while !checking, let next = held.popFirst() { deliver(next, on: loop) }
            guard !checking else { return }
            readsPaused(false)
        }
        if endWanted { end() }
    }

    /// Stops reading the socket while a push is checked (setting `autoRead` back reads at once).
    private func readsPaused(_ paused: Bool) {
        guard let context else { return }
        try? context.channel.syncOptions?.setOption(.autoRead, value: !paused)
    }

    private func fail(_ context: ChannelHandlerContext, because reason: String) {
        guard !failed else { return }
        failed = true
        held.removeAll()
        host.refusals.notice("closed connection \(id) from \(remoteHost): \(reason)")
        context.close(promise: nil)
    }

    /// The room hears of the link's end once, after everything it carried.
    private func end() {
        guard !ended else { return }
        ended = true
        let id = self.id
        host.assumeIsolated { host in host.closed(id) }
    }
}
