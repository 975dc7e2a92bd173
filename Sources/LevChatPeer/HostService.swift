import LevChatCore
import LevChatTransport
import Logging
import NIOCore

/// The host role: accepts connections, authenticates them, and relays through the `HostRoom` state
/// machine.
///
/// The actor runs on the event loop that owns every connection of the room, so a broadcast is
/// sealed, framed and written to each member synchronously in the loop, through the channel like
/// every other write (`Framing`), and flushed once per member: no thread hop per recipient. (With
/// a writer task per member the host spent 24-38 µs of CPU per delivery on hops alone; see
/// Docs/BENCHMARKS.md.) Inbound, a connection's handshake and first message come through its
/// `NIOAsyncChannel`, in a task of its own; from then on `MemberLink` reads it on the loop,
/// so a line goes from one member's socket to every other's with no task switch.
public actor HostService {
    public private(set) var room: HostRoom
    /// Seals each broadcast once for the whole room, with the key of this host's epoch.
    private var broadcastSealer: BroadcastSealer
    private var connections: [ConnectionID: MemberLink] = [:]
    /// Links written to in this loop tick, each once (`MemberLink.flushPending`).
    private var toFlush: [MemberLink] = []
    private var flushScheduled = false
    private var nextConnection: UInt64 = 1
    private var stopped = false
    /// The host's own lines not yet in every member's socket (Docs/PROTOCOL.md, "Flow control").
    private var window: HostSendWindow
    /// `waitForSendWindow` waiting for a line to leave the window or a stall to run out; each of
    /// those counts one here.
    private let windowChanged = StateWaiters()
    private var windowMoves = 0
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
    /// Refusals of broken or hostile connections, a few a minute on the screen.
    nonisolated let refusals: RefusalNotices
    private let clock: PeerClock
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
        self.clock = settings.clock
        refusals = RefusalNotices(logger: logger, clock: settings.clock)
        self.room = room
        // A quarter of what a member may have unsent before it is dropped as too slow, so the
        // host's own lines alone never get a member dropped; a member that takes none of them for
        // twice the dead-link time holds the host's input no longer.
        window = HostSendWindow(countLimit: settings.limits.sendWindowCount,
                                byteLimit: min(settings.limits.sendWindowBytes, settings.limits.sendBacklogBytes / 4),
                                stall: settings.timings.deadAfter * 2)
        broadcastSealer = BroadcastSealer(grant: room.grant, epoch: room.epoch, host: room.me.node)
        // A promoted host starts a generation ahead: handshakes are answered with it.
        keyring.learn(room.grant)
    }

    public var epoch: Int { room.epoch }

    /// Members lost in the last five minutes (see `HostRoom.lostMembers`).
    public func recentlyLost() -> [Member] { room.lostMembers(within: settings.succession.lostMembersAsked, now: clock.now()) }

    /// Heartbeats, dead links and the collection window, until the host leaves or yields.
    public func runUntilStopped() async {
        // Liveness ticks as an event-loop timer (this actor runs on that loop); the end is a
        // signal from `leave` or `yield` once they have drained, not a flag polled.
        let interval = max(settings.timings.heartbeat / 4, .milliseconds(10))
        let ticks = clock.scheduleRepeated(every: interval, on: eventLoop) { [self] in
            assumeIsolated { host in host.tick() }
        }
        defer { ticks.cancel() }
        await finishing.wait { !finished }
    }

    private func tick() {
        guard !stopped else { return }
        let now = clock.now()
        // A link silent to the room may only be unread: a host starved of CPU (300 peers on two
        // cores) ticks, but reaches its sockets late. What the kernel took counts as heard.
        for id in room.silentLinks(now: now) {
            if let channel = connections[id]?.channel, let arrived = clock.lastArrival(on: channel) {
                room.dataArrived(on: id, at: arrived)
            }
        }
        perform(room.tick(now: now))
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
            group.addTask { [clock] in try? await clock.sleep(for: .seconds(2)) }
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
        case .offer(let text): post(text, kind: .offer)
        case .nick(let name): perform(room.renameSelf(to: name, now: clock.now()))
        case .who: console.showMembers(room.roster, you: room.me.node)
        case .whois(let name): console.showWhois(name, room.roster)
        case .history(let count): console.showHistory(room.log, last: count)
        case .quit: return .quit
        }
        return .taken
    }

    private func post(_ text: String, kind: ChatKind) {
        perform(room.post(text, kind: kind, now: clock.now()))
    }

    /// Returns once the host's send window (`HostSendWindow`) has room again. Until then the peer
    /// reads no more input. A member that stalls the window is dropped when its time runs out.
    public func waitForSendWindow() async {
        while window.isFull && !stopped {
            let now = clock.now().monotonic
            let stalled = window.stalled(now: now)
            if !stalled.isEmpty {
                for id in stalled { perform(drop(id, because: "it took none of the host's lines for \(window.stall)")) }
                continue
            }
            // Woken by a line leaving the window or the stall time running out (the alarm counts
            // as a move, so no clock is compared when it rings).
            let alarm = window.stallDeadline.map { deadline in
                clock.schedule(in: max(deadline - now, .zero), on: eventLoop) { [self] in
                    assumeIsolated { host in host.windowMoved() }
                }
            }
            let before = windowMoves
            await windowChanged.wait { [self] in windowMoves == before }
            alarm?.cancel()
        }
    }

    /// One member connection, from handshake to close. Never throws: one bad peer must not take
    /// down the room.
    /// A link whose first message is `fetch` goes to `files` (a member fetching this host's file).
    nonisolated func serve(_ connection: FramedChannel, files: FileDesk) async {
        let logger = self.logger, refusals = self.refusals
        _ = await SecureLink.accept(connection, keyring: keyring, guard: addressGuard, timeout: settings.timings.handshakeTimeout,
                                    clock: clock,
                                    onFailure: { error, remote in
                                        if error.isRoutine { logger.info("refused connection from \(remote): \(error)") }
                                        else { refusals.notice("refused connection from \(remote): \(error)") }
                                    }) { link in
            // The first message within the handshake's time: a join, or a fetch.
            let firstDeadline = link.closeAfter(settings.timings.handshakeTimeout)
            let first: WireMessage?
            defer { firstDeadline.cancel() }
            do { first = try await link.receive() } catch {
                refusals.notice("closed connection from \(link.remoteHost) before its first message: \(error)")
                return
            }
            guard let first else { return }
            firstDeadline.cancel()
            if case .fetch(let fetch) = first {
                await files.serve(&link, fetch)
                return
            }
            var verdicts: [Bool]?
            if case .push(let push) = first { verdicts = push.verdicts(room: link.roomID) }
            let reader = link.reader.records
            guard let id = await admit(link.channel, sealer: link.sealer, remoteHost: link.remoteHost, binding: link.binding,
                                       roomID: link.roomID, records: reader, first: first, pushVerdicts: verdicts) else { return }
            // The link's reads are `MemberLink`'s now, on the loop. This task keeps the
            // connection open until it ends. A frame that still comes this way was read before the
            // handover (a member that quits while it joins sends its `bye` before its welcome); it
            // goes to the link, in order.
            while let frame = await link.reader.frameReadBeforeHandover() {
                guard await readBeforeHandover(frame, on: id) else { break }
            }
        }
    }

    /// A member's link joins the room: its reads and the host's writes go to a `MemberLink` on
    /// this loop, and its first message is handled, in one turn of the loop, so nothing it sends
    /// can come between.
    private func admit(_ channel: any Channel, sealer: RecordSealer, remoteHost: String, binding: [UInt8], roomID: RoomID,
                       records: RecordReader, first: WireMessage, pushVerdicts: [Bool]?) -> ConnectionID? {
        guard !stopped else {
            channel.close(promise: nil)
            return nil
        }
        let id = ConnectionID(nextConnection)
        nextConnection += 1
        let link = MemberLink(host: self, id: id, roomID: roomID, remoteHost: remoteHost, sealer: sealer, records: records, logger: logger)
        // Fails only on a channel already closed: it is gone before it was in.
        guard (try? Transport.divert(channel, to: link)) != nil else { return nil }
        connections[id] = link
        room.connectionOpened(id, binding: binding, now: clock.now())
        received(first, from: id, pushVerdicts: pushVerdicts)
        return id
    }

    /// A frame of `id`'s link that NIO read before its handover; false once the link is gone.
    private func readBeforeHandover(_ frame: ByteBuffer, on id: ConnectionID) -> Bool {
        connections[id]?.readBeforeHandover(frame) ?? false
    }

    /// One message of a member's link (`MemberLink`).
    func received(_ message: WireMessage, from id: ConnectionID, pushVerdicts: [Bool]?) {
        guard let link = connections[id] else { return }
        perform(room.received(message, from: id, observedHost: link.remoteHost, now: clock.now(), pushVerdicts: pushVerdicts))
    }

    /// A member's link ended (`MemberLink`).
    func closed(_ id: ConnectionID) {
        guard let link = connections.removeValue(forKey: id) else { return }
        link.close()
        forget(id)
        perform(room.connectionClosed(id, now: clock.now()))
    }

    /// A member gone: the send window waits for it no more.
    private func forget(_ id: ConnectionID) {
        if window.closed(id) { windowMoved() }
    }

    private func windowMoved() {
        windowMoves += 1
        windowChanged.changed()
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
                // The host's own line counts in its send window until every member has it.
                let own: Bool
                if case .msg(let record) = message { own = record.id.node == room.me.node } else { own = false }
                pending += broadcast(message.encoded(), to: recipients, ownLine: own)
            case .close(let id, let reason):
                logger.info("closing connection \(id): \(reason)")
                if let link = connections.removeValue(forKey: id) {
                    forget(id)
                    link.flush()
                    link.close()
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
        guard !flushScheduled && !toFlush.isEmpty else { return }
        flushScheduled = true
        eventLoop.execute { [self] in
            assumeIsolated { host in host.flushAll() }
        }
    }

    private func flushAll() {
        flushScheduled = false
        for link in toFlush { link.flush() }
        toFlush.removeAll(keepingCapacity: true)
    }

    /// Seals with the member's link key and writes (unflushed).
    private func write(_ plaintext: [UInt8], to id: ConnectionID) -> [HostRoom.Action] {
        guard let link = connections[id] else { return [] }
        guard let frame = try? Framing.sealed(plaintext, with: &link.sealer, allocator: allocator) else {
            return drop(id, because: "a record for it could not be sealed")
        }
        return write(frame, to: link, written: nil)
    }

    /// Seals once, frames once, and hands the same buffer to every recipient (NIO shares its
    /// storage; nothing is copied or allocated per member). The host's own line enters the send
    /// window, and each member's write reports back when it reaches the socket.
    private func broadcast(_ plaintext: [UInt8], to recipients: [ConnectionID], ownLine: Bool) -> [HostRoom.Action] {
        guard let frame = try? Framing.sealed(plaintext, with: &broadcastSealer, allocator: allocator) else {
            return recipients.flatMap { drop($0, because: "a broadcast could not be sealed") }
        }
        var line: HostSendWindow.LineID?
        if ownLine {
            let live = recipients.filter { connections[$0] != nil }
            line = window.posted(bytes: frame.readableBytes, to: live, now: clock.now().monotonic)
        }
        var actions: [HostRoom.Action] = []
        for id in recipients {
            guard let link = connections[id] else { continue }
            actions += write(frame, to: link, written: line)
        }
        return actions
    }

    /// Writes (unflushed). A member whose unsent bytes pass the channel's high-water mark even
    /// after a flush is too slow to keep up, and is dropped rather than allowed to hold the room's
    /// memory.
    private func write(_ frame: ByteBuffer, to link: MemberLink, written line: HostSendWindow.LineID?) -> [HostRoom.Action] {
        if !link.isWritable {
            // What this loop tick wrote is not flushed yet, and a burst read in one tick (a
            // member's paste) can pass the mark on its own; only what the member's socket refuses
            // after a flush counts against it.
            link.flush()
            guard link.isWritable else { return drop(link.id, because: "it is not reading fast enough") }
        }
        if let line {
            let written = eventLoop.makePromise(of: Void.self)
            link.write(frame, promise: written)
            let id = link.id
            written.futureResult.whenComplete { [self] _ in
                assumeIsolated { host in host.lineWritten(line, to: id) }
            }
        } else {
            link.write(frame, promise: nil)
        }
        if !link.flushPending {
            link.flushPending = true
            toFlush.append(link)
        }
        return []
    }

    /// One of the host's own lines reached a member's socket (or failed with its link). The
    /// waiting input wakes only when a whole line left the window, not once per member.
    private func lineWritten(_ line: HostSendWindow.LineID, to id: ConnectionID) {
        if window.written(line, to: id) { windowMoved() }
    }

    private func drop(_ id: ConnectionID, because reason: String) -> [HostRoom.Action] {
        guard let link = connections.removeValue(forKey: id) else { return [] }
        logger.warning("dropping connection \(id): \(reason)")
        forget(id)
        link.close()
        return room.connectionClosed(id, now: clock.now())
    }
}
