import LevChatCore
import LevChatTransport
import Logging
import NIOCore

/// The host role: accepts connections, authenticates them, and relays through the `HostRoom` state
/// machine.
///
/// The actor runs on the event loop that owns every connection of the room, so a broadcast is
/// sealed and written to each member synchronously in the loop and flushed once per member: no
/// thread hop per recipient. (With a writer task per member the host spent 24-38 µs of CPU per
/// delivery on hops alone; see Docs/BENCHMARKS.md.) Inbound traffic still arrives through each
/// connection's `NIOAsyncChannel`, read, opened and decoded by its own task off the loop.
public actor HostService {
    struct Connection {
        let channel: any Channel
        /// Where this actor writes whole frames: below the frame encoder, so a broadcast's one
        /// framed buffer goes to every member as it is (Docs/ARCHITECTURE.md, "How a message flows").
        let frames: ChannelHandlerContext
        var sealer: RecordSealer
        let remoteHost: String
        /// The host's own lines written to this member and not yet in its socket.
        var ownLinesUnwritten = 0
    }

    public private(set) var room: HostRoom
    /// Seals each broadcast once for the whole room, with the key of this host's epoch.
    private var broadcastSealer: BroadcastSealer
    private var connections: [ConnectionID: Connection] = [:]
    private var needsFlush: Set<ConnectionID> = []
    private var flushScheduled = false
    private var nextConnection: UInt64 = 1
    private var stopped = false
    /// The host's own lines whose broadcast is not yet written to every member's socket, oldest
    /// first, with their framed size: the host's send window (Docs/PROTOCOL.md, "Flow control").
    private var ownLinesInFlight: [(written: EventLoopFuture<Void>, bytes: Int)] = []
    private var ownBytesInFlight = 0
    /// While the host's own line is performed: the writes of its broadcast, and its framed size.
    private var ownLineWrites: (futures: [EventLoopFuture<Void>], bytes: Int)?
    /// `leave` and `yield` waiting for the members to close their links.
    private let linksClosing = StateWaiters()
    /// Set once `leave` or `yield` has drained: `runUntilStopped` returns.
    private var finished = false
    private let finishing = StateWaiters()
    private let keyring: RoomKeyring
    private let addressGuard: AddressGuard
    private let settings: PeerSettings
    private let console: Console
    private let logger: Logger
    private let clock = PeerClock()
    private let eventLoop: any EventLoop
    private let allocator = ByteBufferAllocator()

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        eventLoop.executor.asUnownedSerialExecutor()
    }

    /// `eventLoop` must be the loop the listener (and so every accepted connection) runs on.
    public init(room: HostRoom, keyring: RoomKeyring, guard addressGuard: AddressGuard, eventLoop: any EventLoop,
                settings: PeerSettings, console: Console, logger: Logger) {
        self.keyring = keyring
        self.addressGuard = addressGuard
        self.settings = settings
        self.console = console
        self.logger = logger
        self.eventLoop = eventLoop
        self.room = room
        broadcastSealer = BroadcastSealer(grant: room.grant, epoch: room.epoch, host: room.me.node)
        // A promoted host starts a generation ahead: handshakes are answered with it.
        keyring.learn(room.grant)
    }

    public var epoch: Int { room.epoch }

    /// Members lost in the last five minutes (see `HostRoom.lostMembers`).
    public func recentlyLost() -> [Member] { room.lostMembers(within: .seconds(300), now: clock.now()) }

    /// Heartbeats, dead links and the collection window, until the host leaves or yields.
    public func runUntilStopped() async {
        // Liveness ticks as an event-loop timer (this actor runs on that loop); the end is a
        // signal from `leave` or `yield` once they have drained, not a flag polled.
        let interval = TimeAmount(max(settings.timings.heartbeat / 4, .milliseconds(10)))
        let ticks = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            assumeIsolated { host in host.tick() }
        }
        defer { ticks.cancel() }
        await finishing.wait { !finished }
    }

    private func tick() {
        if !stopped { perform(room.tick(now: clock.now())) }
    }

    private func finish() {
        finished = true
        finishing.changed()
    }

    /// The user leaves: the room goes to the most senior member, or ends with nobody left. Waits
    /// (briefly) for those last messages to be written.
    public func leave() async {
        guard !stopped else { return }
        stopped = true
        perform(room.leave(now: clock.now()))
        await drain()
        finish()
    }

    /// Partition heal: hands every member to the host with the higher claim and returns this
    /// room's state, with which this peer goes on as a member.
    public func yield(to host: Member, epoch: Int) async -> HostRoom {
        stopped = true
        perform(room.yield(to: host, epoch: epoch))
        await drain()
        finish()
        return room
    }

    /// Waits until every member has closed its link, or two seconds at most.
    private func drain() async {
        guard !connections.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.untilNoConnections() }
            group.addTask { try? await Task.sleep(for: .seconds(2)) }
            await group.next()
            group.cancelAll()
        }
    }

    private func untilNoConnections() async {
        await linksClosing.wait { !connections.isEmpty }
    }

    /// One line the user typed. Once this host has stopped (it yielded its room, or is leaving)
    /// it takes no more: the line goes to whatever this peer is next.
    public func handle(_ request: RoomRequest) -> LineOutcome {
        guard !stopped else { return .notTaken }
        switch request {
        case .say(let text): post(text, kind: .text)
        case .act(let text): post(text, kind: .action)
        case .nick(let name): perform(room.renameSelf(to: name, now: clock.now()))
        case .who: console.showMembers(room.roster, you: room.me.node)
        case .whois(let name): console.showWhois(name, room.roster)
        case .history(let count): console.showHistory(room.log, last: count)
        case .quit: return .quit
        }
        return .taken
    }

    /// The host's own line, with the writes of its broadcast kept for the send window.
    private func post(_ text: String, kind: ChatKind) {
        ownLineWrites = ([], 0)
        perform(room.post(text, kind: kind, now: clock.now()))
        if let writes = ownLineWrites, !writes.futures.isEmpty {
            ownLinesInFlight.append((EventLoopFuture.andAllComplete(writes.futures, on: eventLoop), writes.bytes))
            ownBytesInFlight += writes.bytes
        }
        ownLineWrites = nil
    }

    /// The host's window in bytes: a quarter of what a member may have unsent before it is dropped
    /// as too slow, so the host's own lines alone never get a member dropped.
    private var sendWindowBytes: Int { min(settings.limits.sendWindowBytes, settings.limits.sendBacklogBytes / 4) }

    /// Returns once fewer than `sendWindowCount` of the host's own lines, and fewer bytes than
    /// its window, are still on their way into some member's socket. Until then the peer reads
    /// no more input, so a file piped into `create` goes out at the pace of the slowest member
    /// instead of piling up in the host's buffers until that member is dropped for its backlog. A
    /// member that stops reading altogether holds the host's input for `ownLineStall` at most:
    /// then it is dropped.
    public func waitForSendWindow() async {
        while !ownLinesInFlight.isEmpty, !stopped,
              ownLinesInFlight.count >= settings.limits.sendWindowCount || ownBytesInFlight >= sendWindowBytes {
            let oldest = ownLinesInFlight[0]
            if !(await isDone(oldest.written, within: ownLineStall)) {
                // Someone still alive (it pings) has not taken the oldest line for that long: it
                // must not hold the host's input for ever. A channel completes its writes in order,
                // so the members still holding the oldest line are those with every line of the
                // window unwritten; one merely a few lines behind is left alone.
                for (id, connection) in connections where connection.ownLinesUnwritten >= ownLinesInFlight.count {
                    perform(drop(id, because: "it took none of the host's lines for \(ownLineStall)"))
                }
                try? await oldest.written.get()
            }
            ownLinesInFlight.removeFirst()
            ownBytesInFlight -= oldest.bytes
        }
    }

    /// How long the host's input may wait for a member that takes none of its lines.
    private var ownLineStall: Duration { settings.timings.deadAfter * 2 }

    /// Whether `future` completes within `limit` (on this actor's event loop, where both the
    /// future's callback and the timer run, so exactly one of them answers).
    private func isDone(_ future: EventLoopFuture<Void>, within limit: Duration) async -> Bool {
        let answer = eventLoop.makePromise(of: Bool.self)
        let answered = NIOLoopBoundBox(false, eventLoop: eventLoop)
        let timer = eventLoop.scheduleTask(in: TimeAmount(limit)) {
            guard !answered.value else { return }
            answered.value = true
            answer.succeed(false)
        }
        future.whenComplete { _ in
            timer.cancel()
            guard !answered.value else { return }
            answered.value = true
            answer.succeed(true)
        }
        return (try? await answer.futureResult.get()) ?? true
    }

    /// A write of the host's own line reached the member's socket (or failed with its link).
    private func ownLineWritten(to id: ConnectionID) {
        connections[id]?.ownLinesUnwritten -= 1
    }

    /// One member connection, from handshake to close. Never throws: one bad peer must not take
    /// down the room.
    public nonisolated func serve(_ connection: FramedChannel) async {
        let logger = self.logger
        _ = await SecureLink.accept(connection, keyring: keyring, guard: addressGuard, timeout: settings.timings.handshakeTimeout,
                                    onFailure: { error, remote in logger.notice("refused connection from \(remote): \(error)") }) { link in
            guard let id = await register(channel: link.channel, sealer: link.sealer, remoteHost: link.remoteHost) else { return }
            // Signatures are checked here, in this connection's own task, so the room's event
            // loop never spends the ~0.1 ms of an Ed25519 verification: a chat's against the
            // member's key, each pushed record's against its own (Docs/ARCHITECTURE.md).
            var key: String?
            do {
                while let message = try await link.receive() {
                    var checked = false
                    var verdicts: [Bool]?
                    if case .chat(let chat) = message {
                        if key == nil { key = await memberKey(id) }
                        checked = key.map { chat.isSigned(room: link.roomID, key: $0) } ?? false
                    } else if case .push(let push) = message {
                        verdicts = push.records.prefix(Resume.maximumTail).map { ChatSignature.verify($0, room: link.roomID) }
                    }
                    await received(message, from: id, signatureChecked: checked, pushVerdicts: verdicts)
                }
            } catch {
                logger.notice("closed connection \(id) from \(link.remoteHost): \(error)")
            }
            await closed(id)
        }
    }

    private func register(channel: any Channel, sealer: RecordSealer, remoteHost remote: String) -> ConnectionID? {
        guard !stopped else {
            channel.close(promise: nil)
            return nil
        }
        guard let frames = try? channel.pipeline.syncOperations.context(handlerType: FrameEncoder.self) else {
            channel.close(promise: nil)
            return nil
        }
        let id = ConnectionID(nextConnection)
        nextConnection += 1
        connections[id] = Connection(channel: channel, frames: frames, sealer: sealer, remoteHost: remote)
        room.connectionOpened(id, now: clock.now())
        return id
    }

    private func received(_ message: WireMessage, from id: ConnectionID, signatureChecked: Bool, pushVerdicts: [Bool]?) {
        guard let connection = connections[id] else { return }
        perform(room.received(message, from: id, observedHost: connection.remoteHost, now: clock.now(),
                              signatureChecked: signatureChecked, pushVerdicts: pushVerdicts))
    }

    private func memberKey(_ id: ConnectionID) -> String? { room.key(of: id) }

    private func closed(_ id: ConnectionID) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        connection.channel.close(promise: nil)
        perform(room.connectionClosed(id, now: clock.now()))
    }

    /// Carries out the state machine's actions. A broadcast is encoded once, sealed once with the
    /// room's broadcast key and framed once; the same buffer goes to every recipient. Every
    /// touched connection is flushed once at the end of the loop tick.
    private func perform(_ actions: [HostRoom.Action]) {
        var pending = actions[...]
        while let action = pending.popFirst() {
            switch action {
            case .send(let id, let message):
                pending += write(message.encoded(), to: id)
            case .broadcast(let message, let recipients):
                pending += broadcast(message.encoded(), to: recipients)
            case .close(let id, let reason):
                logger.info("closing connection \(id): \(reason)")
                if let connection = connections.removeValue(forKey: id) {
                    needsFlush.remove(id)
                    connection.channel.flush()
                    connection.channel.close(promise: nil)
                }
            case .show(let event):
                console.show(event)
            case .newBroadcastKey:
                broadcastSealer = BroadcastSealer(grant: room.grant, epoch: room.epoch, host: room.me.node)
                keyring.learn(room.grant)
            }
        }
        scheduleFlush()
        if connections.isEmpty { linksClosing.changed() }
    }

    /// Flushes at the end of this loop tick, so the messages handled in one tick reach each member
    /// in one write instead of one write per message.
    private func scheduleFlush() {
        guard !flushScheduled && !needsFlush.isEmpty else { return }
        flushScheduled = true
        eventLoop.execute { [self] in
            assumeIsolated { host in host.flushAll() }
        }
    }

    private func flushAll() {
        flushScheduled = false
        for id in needsFlush { connections[id]?.channel.flush() }
        needsFlush.removeAll(keepingCapacity: true)
    }

    /// Seals with the member's link key and writes (unflushed).
    private func write(_ plaintext: [UInt8], to id: ConnectionID) -> [HostRoom.Action] {
        guard var connection = connections[id] else { return [] }
        guard let record = try? connection.sealer.seal(plaintext) else { return drop(id, because: "a record for it could not be sealed") }
        connections[id] = connection
        return write(framed(record), to: id)
    }

    /// Seals once, frames once, and hands the same buffer to every recipient (NIO shares its
    /// storage; nothing is copied or allocated per member).
    private func broadcast(_ plaintext: [UInt8], to recipients: [ConnectionID]) -> [HostRoom.Action] {
        guard let record = try? broadcastSealer.seal(plaintext) else {
            return recipients.flatMap { drop($0, because: "a broadcast could not be sealed") }
        }
        let buffer = framed(record)
        return recipients.flatMap { write(buffer, to: $0) }
    }

    /// Writes (unflushed). A member whose unsent bytes pass the channel's high-water mark is too
    /// slow to keep up and is dropped rather than allowed to hold the room's memory.
    private func write(_ frame: ByteBuffer, to id: ConnectionID) -> [HostRoom.Action] {
        guard let connection = connections[id] else { return [] }
        guard connection.channel.isWritable else { return drop(id, because: "it is not reading fast enough") }
        if ownLineWrites != nil {
            let written = eventLoop.makePromise(of: Void.self)
            connection.frames.write(NIOAny(frame), promise: written)
            connections[id]?.ownLinesUnwritten += 1
            written.futureResult.whenComplete { [self] _ in
                assumeIsolated { host in host.ownLineWritten(to: id) }
            }
            ownLineWrites?.futures.append(written.futureResult)
            ownLineWrites?.bytes = frame.readableBytes
        } else {
            connection.frames.write(NIOAny(frame), promise: nil)
        }
        needsFlush.insert(id)
        return []
    }

    private func drop(_ id: ConnectionID, because reason: String) -> [HostRoom.Action] {
        guard let connection = connections.removeValue(forKey: id) else { return [] }
        logger.warning("dropping connection \(id): \(reason)")
        needsFlush.remove(id)
        connection.channel.close(promise: nil)
        return room.connectionClosed(id, now: clock.now())
    }

    /// Length header and record in one buffer.
    private func framed(_ record: [UInt8]) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: FrameCodec.headerLength + record.count)
        buffer.writeInteger(UInt32(record.count))
        buffer.writeBytes(record)
        return buffer
    }
}
