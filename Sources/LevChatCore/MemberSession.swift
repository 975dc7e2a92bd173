/// A member's view of the room: its copy of the log and roster, its outbox of messages the host
/// has not echoed yet, and liveness of the link to the host. Pure: the caller does the I/O.
public struct MemberSession: Sendable {
    public enum Action: Equatable, Sendable {
        case send(WireMessage)
        case show(RoomEvent)
        /// The link to the host is over; the reason is for the user.
        case ended(Ending)
    }

    public enum Ending: Equatable, Sendable {
        case roomClosed
        case hostLost(String)
        case refused(ErrorInfo)
        case protocolViolation(String)
    }

    enum Phase: Sendable { case joining, joined, ended }

    public let me: NodeID
    public let name: String
    public private(set) var log: RoomLog
    public private(set) var roster: RosterSnapshot?
    /// Sent but not yet echoed by a host, oldest first.
    public private(set) var outbox: [Chat] = []
    private var nextSenderSeq = 1
    private var phase = Phase.joining
    private var pendingHistory: [ChatRecord] = []
    private var lastHeard: Duration
    private var lastSent: Duration
    private let limits: RoomLimits
    private let timings: RoomTimings

    public init(me: NodeID, name: String, now: Moment, limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings()) {
        self.me = me
        self.name = name
        self.limits = limits
        self.timings = timings
        log = RoomLog(limits: limits)
        lastHeard = now.monotonic
        lastSent = now.monotonic
    }

    public mutating func joinRequest(listenPort: Int, endpoints: [String], now: Moment) -> WireMessage {
        lastSent = now.monotonic
        return .join(Join(node: me, name: name, listenPort: listenPort, endpoints: endpoints, lastSeq: log.lastSeq))
    }

    /// A line the user typed. Too long is refused here, before it costs anyone anything.
    public mutating func post(_ text: String, now: Moment) -> [Action] {
        guard text.utf8.count <= limits.maxTextBytes else {
            return [.show(.notice("message not sent: it is over \(limits.maxTextBytes) bytes"))]
        }
        let chat = Chat(id: MessageID(node: me, seq: nextSenderSeq), text: text)
        nextSenderSeq += 1
        outbox.append(chat)
        guard phase == .joined else { return [] }
        lastSent = now.monotonic
        return [.send(.chat(chat))]
    }

    public mutating func received(_ message: WireMessage, now: Moment) -> [Action] {
        guard phase != .ended else { return [] }
        lastHeard = now.monotonic
        switch (phase, message) {
        case (.joining, .history(let chunk)):
            pendingHistory += chunk.records
            return []
        case (.joining, .welcome(let welcome)):
            phase = .joined
            roster = welcome.roster
            var actions: [Action] = []
            for record in pendingHistory.sorted(by: { $0.seq < $1.seq }) where log.apply(record) {
                actions.append(.show(.message(record, replayed: true)))
            }
            pendingHistory = []
            actions.append(.show(.entered(you: welcome.you, roster: welcome.roster)))
            // Anything typed while joining goes out now, in order.
            lastSent = now.monotonic
            actions += outbox.map { .send(.chat($0)) }
            return actions
        case (.joining, .error(let info)):
            phase = .ended
            return [.ended(.refused(info))]
        case (.joined, .msg(let record)):
            if record.id.node == me { outbox.removeAll { $0.id == record.id } }
            return log.apply(record) ? [.show(.message(record, replayed: false))] : []
        case (.joined, .presence(let presence)):
            guard presence.roster.epoch >= (roster?.epoch ?? 0) else { return [] }
            roster = presence.roster
            switch presence.event {
            case .joined: return [.show(.joined(presence.member, time: presence.time))]
            case .left: return [.show(.left(presence.member, reason: presence.reason ?? "quit", time: presence.time))]
            }
        case (.joined, .error(let info)):
            return [.show(.notice(info.message))]
        case (_, .bye):
            phase = .ended
            return [.ended(.roomClosed)]
        case (_, .ping), (_, .unknown):
            return []
        default:
            phase = .ended
            return [.ended(.protocolViolation("host sent \(message.typeName) while \(phase == .joining ? "joining" : "joined")"))]
        }
    }

    public mutating func linkClosed() -> [Action] {
        guard phase != .ended else { return [] }
        phase = .ended
        return [.ended(.hostLost("the connection to the host closed"))]
    }

    public mutating func tick(now: Moment) -> [Action] {
        guard phase != .ended else { return [] }
        if now.monotonic - lastHeard >= timings.deadAfter {
            phase = .ended
            return [.ended(.hostLost("the host has been silent for \(timings.deadAfter)"))]
        }
        if phase == .joined && now.monotonic - lastSent >= timings.heartbeat {
            lastSent = now.monotonic
            return [.send(.ping(Ping(lastSeq: log.lastSeq)))]
        }
        return []
    }

    /// A polite goodbye to the host.
    public mutating func leave() -> [Action] {
        guard phase != .ended else { return [] }
        phase = .ended
        return [.send(.bye(Bye(reason: "quit")))]
    }
}
