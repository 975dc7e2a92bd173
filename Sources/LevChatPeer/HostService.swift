import LevChatCore
import LevChatTransport
import Logging
import NIOCore

/// The host role: accepts connections, authenticates them, and relays through the `HostRoom` state
/// machine. The actor owns the room; each connection has a reader (this actor's caller) and a writer
/// task draining a bounded queue, so a slow member never stalls a broadcast.
public actor HostService {
    struct Connection {
        let queue: OutboundQueue
        let channel: any Channel
        let remoteHost: String
    }

    private var room: HostRoom
    private var connections: [ConnectionID: Connection] = [:]
    private var nextConnection: UInt64 = 1
    private var nextSenderSeq = 1
    private let keys: RoomKeys
    private let settings: PeerSettings
    private let console: Console
    private let logger: Logger
    private let clock = PeerClock()

    public init(keys: RoomKeys, me: NodeID, endpoints: [String], settings: PeerSettings, console: Console, logger: Logger) {
        self.keys = keys
        self.settings = settings
        self.console = console
        self.logger = logger
        room = HostRoom(host: me, name: settings.name, endpoints: endpoints,
                        limits: settings.limits, timings: settings.timings)
    }

    /// Runs the room until the user leaves.
    public func run(listener: FramedListener, input: AsyncStream<UserInput>) async -> PeerOutcome {
        console.show(room.createdEvent)
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await listener.executeThenClose { inbound in
                    try await withThrowingDiscardingTaskGroup { connections in
                        for try await connection in inbound {
                            connections.addTask { await self.serve(connection) }
                        }
                    }
                }
            }
            group.addTask { await self.tickForever() }
            for await event in input {
                if case .line(let text) = event, handle(InputLine(parsing: text)) { continue }
                break
            }
            await closeRoom()
            group.cancelAll()
        }
        return .left
    }

    /// One member connection, from handshake to close. Never throws: one bad peer must not take
    /// down the room.
    private nonisolated func serve(_ connection: FramedChannel) async {
        let channel = connection.channel
        let remote = channel.remoteAddress.map(HostService.describe) ?? "unknown peer"
        try? await connection.executeThenClose { inbound, outbound -> Void in
            var frames = FrameReader(inbound)
            let ciphers: SessionCiphers
            do {
                ciphers = try await SecureHandshake.accept(
                    frames: &frames, outbound: outbound, channel: channel, keys: keys, timeout: settings.timings.handshakeTimeout)
            } catch {
                logger.notice("refused connection from \(remote): \(error)")
                return
            }
            let queue = OutboundQueue()
            let id = await register(queue: queue, channel: channel)
            await withDiscardingTaskGroup { group in
                group.addTask {
                    try? await SecureWriter.drain(queue, sealer: ciphers.sealer, to: outbound)
                    channel.close(promise: nil)
                }
                var reader = SecureReader(frames: frames, opener: ciphers.opener)
                do {
                    while let message = try await reader.next() {
                        await received(message, from: id)
                    }
                } catch {
                    logger.notice("closed connection \(id) from \(remote): \(error)")
                }
                queue.finish()
                channel.close(promise: nil)
                await closed(id)
            }
        }
    }

    private func register(queue: OutboundQueue, channel: any Channel) -> ConnectionID {
        let id = ConnectionID(nextConnection)
        nextConnection += 1
        let remote = channel.remoteAddress?.ipAddress.map(HostService.unmapped) ?? "127.0.0.1"
        connections[id] = Connection(queue: queue, channel: channel, remoteHost: remote)
        room.connectionOpened(id, now: clock.now())
        return id
    }

    private func received(_ message: WireMessage, from id: ConnectionID) {
        guard let connection = connections[id] else { return }
        perform(room.received(message, from: id, observedHost: connection.remoteHost, now: clock.now()))
    }

    private func closed(_ id: ConnectionID) {
        connections[id] = nil
        perform(room.connectionClosed(id, now: clock.now()))
    }

    /// Returns false when the user wants to leave.
    private func handle(_ line: InputLine) -> Bool {
        switch line {
        case .say(let text):
            let id = MessageID(node: room.me.node, seq: nextSenderSeq)
            nextSenderSeq += 1
            perform(room.post(text, messageID: id, now: clock.now()))
        case .who: console.showMembers(room.roster, you: room.me.node)
        case .help: console.help()
        case .quit: return false
        case .unknownCommand(let name): console.show(.notice("unknown command /\(name); /help lists the commands"))
        case .empty: break
        }
        return true
    }

    private func tickForever() async {
        let interval = max(settings.timings.heartbeat / 4, .milliseconds(10))
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            perform(room.tick(now: clock.now()))
        }
    }

    /// Tells every member the room is closed and waits (briefly) for those goodbyes to be written.
    private func closeRoom() async {
        perform(room.closeRoom())
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(2)
        while !connections.isEmpty && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    private func perform(_ actions: [HostRoom.Action]) {
        var pending = actions[...]
        while let action = pending.popFirst() {
            switch action {
            case .send(let id, let message):
                if !enqueue(message.encoded(), to: id) { pending += overflowed(id) }
            case .broadcast(let message, let recipients):
                let bytes = message.encoded()
                for id in recipients where !enqueue(bytes, to: id) { pending += overflowed(id) }
            case .close(let id, let reason):
                logger.info("closing connection \(id): \(reason)")
                connections[id]?.queue.finish()
            case .show(let event):
                console.show(event)
            }
        }
    }

    private func enqueue(_ bytes: [UInt8], to id: ConnectionID) -> Bool {
        connections[id]?.queue.enqueue(bytes) ?? true
    }

    /// A member too slow to keep up is dropped rather than allowed to hold the room's memory.
    private func overflowed(_ id: ConnectionID) -> [HostRoom.Action] {
        logger.warning("dropping connection \(id): it is not reading fast enough")
        connections.removeValue(forKey: id)?.channel.close(promise: nil)
        return room.connectionClosed(id, now: clock.now())
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress else { return "\(address)" }
        return Endpoint.format(host: unmapped(ip), port: address.port ?? 0)
    }

    /// `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) as `10.0.0.1`.
    static func unmapped(_ ip: String) -> String {
        ip.hasPrefix("::ffff:") && ip.contains(".") ? String(ip.dropFirst(7)) : ip
    }
}
