/// The host's room state machine. It decides; the caller carries out the returned actions (sends,
/// closes, local display). No I/O and no clock of its own, so it runs under a fake clock in tests.
public struct HostRoom: Sendable {
    public enum Action: Equatable, Sendable {
        case send(ConnectionID, WireMessage)
        /// To each of these connections; the message is encoded once for all of them.
        case broadcast(WireMessage, to: [ConnectionID])
        case close(ConnectionID, reason: String)
        case show(RoomEvent)
    }

    struct Link: Sendable {
        var node: NodeID?
        var lastHeard: Duration
        var lastSent: Duration
    }

    public private(set) var log: RoomLog
    public private(set) var epoch: Int
    public let me: Member
    /// Members in join order; the host is the first.
    public private(set) var members: [Member]
    private var links: [ConnectionID: Link] = [:]
    private var linkOfNode: [NodeID: ConnectionID] = [:]
    private var nextOrdinal: Int
    private let limits: RoomLimits
    private let timings: RoomTimings

    public init(host: NodeID, name: String, endpoints: [String], epoch: Int = 1,
                limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings()) {
        me = Member(node: host, name: name, ordinal: 1, endpoints: endpoints)
        members = [me]
        nextOrdinal = 2
        self.epoch = epoch
        self.limits = limits
        self.timings = timings
        log = RoomLog(limits: limits)
    }

    public var roster: RosterSnapshot { RosterSnapshot(epoch: epoch, host: me.node, members: members) }

    /// The events the host shows itself when the room is made.
    public var createdEvent: RoomEvent { .entered(you: me, roster: roster) }

    public mutating func connectionOpened(_ id: ConnectionID, now: Moment) {
        links[id] = Link(node: nil, lastHeard: now.monotonic, lastSent: now.monotonic)
    }

    /// `observedHost` is the address the connection came from; it is paired with the member's
    /// listening port to make an endpoint others can reach.
    public mutating func received(_ message: WireMessage, from id: ConnectionID, observedHost: String, now: Moment) -> [Action] {
        guard var link = links[id] else { return [] }
        link.lastHeard = now.monotonic
        links[id] = link
        guard let node = link.node else {
            guard case .join(let join) = message else {
                return [.close(id, reason: "sent \(message.typeName) before join")]
            }
            return admit(join, on: id, observedHost: observedHost, now: now)
        }
        switch message {
        case .chat(let chat):
            guard chat.id.node == node else { return [.close(id, reason: "chat with another member's id")] }
            return sequence(chat, from: node, replyTo: id, now: now)
        case .bye:
            return remove(id, reason: "quit", now: now)
        case .ping, .unknown:
            return []
        default:
            return [.close(id, reason: "unexpected \(message.typeName) from a member")]
        }
    }

    public mutating func connectionClosed(_ id: ConnectionID, now: Moment) -> [Action] {
        remove(id, reason: "lost", now: now, alreadyClosed: true)
    }

    /// Heartbeats and dead-link detection; call about every heartbeat / 4.
    public mutating func tick(now: Moment) -> [Action] {
        var actions: [Action] = []
        for (id, link) in links.sorted(by: { $0.key.raw < $1.key.raw }) {
            if now.monotonic - link.lastHeard >= timings.deadAfter {
                actions += remove(id, reason: "lost", now: now)
            } else if now.monotonic - link.lastSent >= timings.heartbeat {
                actions.append(send(.ping(Ping(lastSeq: log.lastSeq)), to: id, now: now))
            }
        }
        return actions
    }

    /// The host's own chat line.
    public mutating func post(_ text: String, messageID: MessageID, now: Moment) -> [Action] {
        guard text.utf8.count <= limits.maxTextBytes else {
            return [.show(.notice("message not sent: it is over \(limits.maxTextBytes) bytes"))]
        }
        guard let record = log.sequence(id: messageID, from: me.name, text: text, time: now.wallMillis) else { return [] }
        return broadcast(.msg(record), except: nil, now: now) + [.show(.message(record, replayed: false))]
    }

    /// The host leaves and, with no successor yet, closes the room.
    public mutating func closeRoom() -> [Action] {
        let recipients = joinedLinks(except: nil)
        let all = links.keys.sorted { $0.raw < $1.raw }
        links.removeAll()
        linkOfNode.removeAll()
        members = [me]
        return [.broadcast(.bye(Bye(reason: "room_closed")), to: recipients)] + all.map { .close($0, reason: "room closed") }
    }

    private mutating func admit(_ join: Join, on id: ConnectionID, observedHost: String, now: Moment) -> [Action] {
        let name: String
        do {
            name = try NameRule.validate(join.name)
        } catch {
            return refuse(id, .protocolError, "invalid name: \(error.description)")
        }
        if members.contains(where: { $0.node == join.node }) {
            return refuse(id, .protocolError, "node id already in the room")
        }
        if members.contains(where: { $0.name.lowercased() == name.lowercased() }) {
            return refuse(id, .nameTaken, "the name \(name) is taken in this room")
        }
        guard members.count < limits.maxMembers else {
            return refuse(id, .roomFull, "the room is full (\(limits.maxMembers) members)")
        }
        var endpoints: [String] = []
        if (1...65535).contains(join.listenPort) {
            endpoints.append(Endpoint.format(host: observedHost, port: join.listenPort))
        }
        for reported in join.endpoints.prefix(8) where reported.utf8.count <= 80 && !endpoints.contains(reported) {
            endpoints.append(reported)
        }
        let member = Member(node: join.node, name: name, ordinal: nextOrdinal, endpoints: endpoints)
        nextOrdinal += 1
        members.append(member)
        links[id]?.node = join.node
        linkOfNode[join.node] = id

        var actions: [Action] = log.historyChunks().map { send(.history(HistoryChunk(records: $0)), to: id, now: now) }
        actions.append(send(.welcome(Welcome(you: member, roster: roster, historyCount: log.history.count)), to: id, now: now))
        let presence = Presence(event: .joined, member: member, reason: nil, time: now.wallMillis, roster: roster)
        actions += broadcast(.presence(presence), except: id, now: now)
        actions.append(.show(.joined(member, time: now.wallMillis)))
        return actions
    }

    private mutating func sequence(_ chat: Chat, from node: NodeID, replyTo id: ConnectionID, now: Moment) -> [Action] {
        guard chat.text.utf8.count <= limits.maxTextBytes else {
            return [send(.error(ErrorInfo(code: .tooLong, message: "message not sent: it is over \(limits.maxTextBytes) bytes")), to: id, now: now)]
        }
        guard let name = members.first(where: { $0.node == node })?.name,
              let record = log.sequence(id: chat.id, from: name, text: chat.text, time: now.wallMillis)
        else { return [] }
        return broadcast(.msg(record), except: nil, now: now) + [.show(.message(record, replayed: false))]
    }

    private mutating func remove(_ id: ConnectionID, reason: String, now: Moment, alreadyClosed: Bool = false) -> [Action] {
        guard let link = links.removeValue(forKey: id) else { return [] }
        var actions: [Action] = alreadyClosed ? [] : [.close(id, reason: reason == "quit" ? "member left" : "link silent for \(timings.deadAfter)")]
        guard let node = link.node, let index = members.firstIndex(where: { $0.node == node }) else { return actions }
        let member = members.remove(at: index)
        linkOfNode[node] = nil
        let presence = Presence(event: .left, member: member, reason: reason, time: now.wallMillis, roster: roster)
        actions += broadcast(.presence(presence), except: nil, now: now)
        actions.append(.show(.left(member, reason: reason, time: now.wallMillis)))
        return actions
    }

    private mutating func refuse(_ id: ConnectionID, _ code: ErrorCode, _ message: String) -> [Action] {
        links[id] = nil
        return [.send(id, .error(ErrorInfo(code: code, message: message))), .close(id, reason: message)]
    }

    private mutating func send(_ message: WireMessage, to id: ConnectionID, now: Moment) -> Action {
        links[id]?.lastSent = now.monotonic
        return .send(id, message)
    }

    private mutating func broadcast(_ message: WireMessage, except: ConnectionID?, now: Moment) -> [Action] {
        let recipients = joinedLinks(except: except)
        for id in recipients { links[id]?.lastSent = now.monotonic }
        return recipients.isEmpty ? [] : [.broadcast(message, to: recipients)]
    }

    private func joinedLinks(except: ConnectionID?) -> [ConnectionID] {
        members.compactMap { linkOfNode[$0.node] }.filter { $0 != except }
    }
}

/// `host:port` text for endpoints, with IPv6 addresses in brackets.
public enum Endpoint {
    public static func format(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Splits `host:port` or `[v6]:port`. Nil when it is not of that form.
    public static func parse(_ text: String) -> (host: String, port: Int)? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return (String(host), port)
    }
}
