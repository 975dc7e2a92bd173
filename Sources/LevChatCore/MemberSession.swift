/// A member's view of the room: its copy of the log and roster, its outbox of messages no host
/// has echoed yet, and liveness of the link to the host. It outlives any one link: after a host
/// change the same session `resume`s at the next host, which is how nothing is lost or doubled.
/// Pure: the caller does the I/O.
public struct MemberSession: Sendable {
    public enum Action: Equatable, Sendable {
        case send(WireMessage)
        case show(RoomEvent)
        /// The room secret moved to a new generation (`grant`): open the host's broadcasts from
        /// here on with its key.
        case newBroadcastKey
        /// The link to the host is over; the reason is for the user (or for the succession).
        case ended(Ending)
    }

    public enum Ending: Equatable, Sendable {
        case roomClosed
        case hostLost(String)
        case refused(ErrorInfo)
        case protocolViolation(String)
        /// The host left and named its successor.
        case handover(Handover)
        /// The peer called is not the host; it says where the host is (or that it is finding one).
        case redirected(Redirect)
    }

    enum Phase: Sendable { case joining, joined, ended }

    public let identity: PeerIdentity
    public var me: NodeID { identity.node }
    /// The name this member joins and resumes with; a `/nick` the host confirmed changes it.
    public private(set) var name: String
    /// The room's id and secret, from the first `welcome` (or from the room this peer hosted).
    public private(set) var grant: RoomGrant?
    public private(set) var log: RoomLog
    public private(set) var roster: RosterSnapshot?
    /// This member's own entry in the roster, once it has one.
    public private(set) var you: Member?
    /// Sent but not yet echoed by a host, oldest first.
    public private(set) var outbox: [Chat] = []
    public private(set) var nextSenderSeq = 1
    /// This member's signed claim to `name` in its room (`NameClaim`), made when it first connects.
    public private(set) var claim: NameClaim?
    private var firstClaimCounter = 1
    /// Names each member of the room was seen under before its last renames: a line signed just
    /// before a rename is still that member's (Docs/PROTOCOL.md, "Names").
    private var formerNames: [NodeID: [String]] = [:]
    /// The epoch whose new host the user was last told of: a member that resumes after the new
    /// host's collection window gets no `host` presence, only the welcome, and is told then; one
    /// told at its welcome is not told again by the presence.
    private var hostShownForEpoch: Int?
    private var phase = Phase.joining
    /// Lines typed before the room id was known, to be signed at the welcome.
    private var unsigned: [(seq: Int, text: String, kind: ChatKind)] = []
    private var pendingHistory: [ChatRecord] = []
    private var lastHeard: Duration
    /// The previous `tick` (`RoomTimings.freezeGap`).
    private var lastTick: Duration?
    private var lastSent: Duration
    private let limits: RoomLimits
    private let timings: RoomTimings

    /// `firstSenderSeq` numbers this run's first line (and its first name claim): `RunSequence.first`
    /// for a peer whose identity outlives the run.
    public init(identity: PeerIdentity, name: String, now: Moment, limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings(),
                firstSenderSeq: Int = 1) {
        self.identity = identity
        self.name = name
        nextSenderSeq = firstSenderSeq
        firstClaimCounter = firstSenderSeq
        self.limits = limits
        self.timings = timings
        log = RoomLog(limits: limits)
        lastHeard = now.monotonic
        lastSent = now.monotonic
    }

    /// A host that gives up its room to a higher claim goes on as a member with its log.
    public init(continuing room: HostRoom, now: Moment, limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings()) {
        self.init(identity: room.identity, name: room.me.name, now: now, limits: limits, timings: timings)
        grant = room.grant
        log = room.log
        roster = room.roster
        you = room.me
        claim = room.me.claim
        nextSenderSeq = room.nextSenderSeq
        outbox = room.ownPending
    }

    public var isJoined: Bool { phase == .joined }

    /// Lines typed that no host has echoed yet, signed or not: what leaving must wait for.
    public var unconfirmedCount: Int { outbox.count + unsigned.count }

    /// The text bytes of those lines.
    public var unconfirmedBytes: Int {
        outbox.reduce(0) { $0 + $1.text.utf8.count } + unsigned.reduce(0) { $0 + $1.text.utf8.count }
    }

    /// Past the send window a member stops reading its input until echoes come back, so a pasted
    /// file waits in its pipe rather than in memory or a queue that would have to drop it
    /// (Docs/PROTOCOL.md, "Flow control").
    public var isSendWindowFull: Bool {
        unconfirmedCount >= limits.sendWindowCount || unconfirmedBytes >= limits.sendWindowBytes
    }

    /// Whether this member has been in the room (so it resumes rather than joins).
    public var hasRoom: Bool { you != nil }

    /// Starts a new link to `room` (as its handshake proved it): to the first host (`join`) or to
    /// a next one (`resume`), signing the link's `binding` (`LinkProof`).
    public mutating func connect(room: RoomID, binding: [UInt8], listenPort: Int, endpoints: [String], now: Moment) -> WireMessage {
        phase = .joining
        pendingHistory = []
        lastHeard = now.monotonic
        lastSent = now.monotonic
        let claim = self.claim ?? identity.claimName(name, room: room, counter: firstClaimCounter)
        self.claim = claim
        guard let you else {
            return .join(Join(node: me, name: name, listenPort: listenPort, endpoints: endpoints, lastSeq: log.lastSeq,
                              key: Base64.encode(identity.publicKey), claim: claim, proof: identity.proveLink(room: room, binding: binding)))
        }
        var resume = Resume(node: me, name: name, ordinal: you.ordinal, listenPort: listenPort, endpoints: endpoints,
                            lastSeq: log.lastSeq, tail: log.tail(), key: Base64.encode(identity.publicKey), claim: claim,
                            proof: identity.proveLink(room: room, binding: binding))
        resume.gen = grant?.generation ?? 0
        return .resume(resume)
    }

    /// Joins as `name` from the next link on: the one asked for was taken, and it was the user's
    /// login name, not one they chose (`FirstJoin`). Only before the room is entered.
    public mutating func joinAs(_ name: String) {
        guard you == nil, grant == nil else { return }
        self.name = name
        claim = nil
    }

    /// A line the user typed. Too long is refused here, before it costs anyone anything.
    public mutating func post(_ text: String, kind: ChatKind = .text, now: Moment) -> [Action] {
        guard text.utf8.count <= limits.maxTextBytes else {
            return [.show(.notice("message not sent: it is over \(limits.maxTextBytes) bytes"))]
        }
        guard let grant else {
            // Typed before the first welcome: signed once the room id is known.
            unsigned.append((nextSenderSeq, text, kind))
            nextSenderSeq += 1
            return [.show(.pending(MessageID(node: me, seq: nextSenderSeq - 1), text: text, kind: kind))]
        }
        let chat = Chat(signedBy: identity, room: grant.roomID, seq: nextSenderSeq, name: name, text: text, kind: kind)
        nextSenderSeq += 1
        outbox.append(chat)
        let pending = Action.show(.pending(chat.id, text: text, kind: kind))
        guard phase == .joined else { return [pending] }
        lastSent = now.monotonic
        return [pending, .send(.chat(chat))]
    }

    /// `/nick`: asks the host for a new name; the name changes when the host announces it.
    public mutating func rename(to rawName: String) -> [Action] {
        let name: String
        do {
            name = try NameRule.validate(rawName)
        } catch {
            return [.show(.notice("name not changed: \(error.description)"))]
        }
        guard phase == .joined, let grant else {
            return [.show(.notice("name not changed: not linked to a host right now; try again in a moment"))]
        }
        let claim = identity.claimName(name, room: grant.roomID, counter: (self.claim?.counter ?? 0) + 1)
        return [.send(.nick(Rename(name: name, claim: claim)))]
    }

    public mutating func received(_ message: WireMessage, now: Moment) -> [Action] {
        guard phase != .ended else { return [] }
        lastHeard = now.monotonic
        switch (phase, message) {
        case (.joining, .history(let chunk)):
            pendingHistory += chunk.records
            return []
        case (.joining, .welcome(let welcome)):
            return welcomed(welcome, now: now)
        case (.joining, .error(let info)):
            phase = .ended
            return [.ended(.refused(info))]
        case (.joining, .redirect(let redirect)):
            phase = .ended
            return [.ended(.redirected(redirect))]
        case (.joined, .msg(let record)):
            return take(record, replayed: false)
        case (.joined, .presence(var presence)):
            guard let current = roster, let grant, (presence.roster?.epoch ?? current.epoch) >= current.epoch else { return [] }
            var notices: [Action] = []
            if let whole = presence.roster {
                let (checked, refused) = verifiedRoster(whole, room: grant.roomID)
                presence.roster = checked
                notices = refused
            }
            let earlier = current.members.first { $0.node == presence.member.node }
            if presence.event == .joined || presence.event == .renamed {
                // The name of a member who comes or renames is its own signed word, not the host's.
                let rollsBack = presence.event == .renamed && (presence.member.claim?.counter ?? 0) <= (earlier?.claim?.counter ?? 0)
                let takenByAnother = current.members.contains { $0.node != presence.member.node && NameRule.sameName($0.name, presence.member.name) }
                guard presence.member.hasValidClaim(room: grant.roomID), !rollsBack, !takenByAnother else {
                    return [.show(.notice("ignored the host's word that a member is called \(presence.member.name): that member's key did not claim it"))]
                }
                if let earlier, earlier.name != presence.member.name {
                    formerNames[earlier.node] = Array((formerNames[earlier.node, default: []] + [earlier.name]).suffix(4))
                }
            }
            let next = current.applying(presence)
            roster = next
            if let mine = next.members.first(where: { $0.node == me }) {
                you = mine
                if presence.event == .renamed, mine.node == presence.member.node { claim = mine.claim }
            }
            switch presence.event {
            case .joined: return notices + [.show(.joined(presence.member, time: presence.time))]
            case .left: return [.show(.left(presence.member, reason: presence.reason ?? "quit", time: presence.time))]
            case .host:
                guard hostShownForEpoch != next.epoch else { return notices }
                hostShownForEpoch = next.epoch
                // A previous host still in the room (its side of a split joined this host's) did
                // not leave, and is not said to have.
                let gone = presence.previous.flatMap { previous in next.members.contains { $0.node == previous.node } ? nil : previous }
                return notices + [.show(.hostChanged(previous: gone, host: presence.member,
                                                     epoch: next.epoch, time: presence.time))]
            case .renamed:
                if presence.member.node == me { name = presence.member.name }
                return [.show(.renamed(from: earlier ?? presence.member, to: presence.member, time: presence.time))]
            }
        case (.joined, .rekey(let rekey)):
            // Forward only, and this member keeps only the newest secret: a fresh one from the
            // host (after a departure), or the ratchet's next step (after a join).
            guard let current = grant, rekey.gen > current.generation else { return [] }
            if let encoded = rekey.secret {
                guard let bytes = Base64.decode(encoded), let fresh = RoomGrant(roomID: current.roomID, secret: bytes, generation: rekey.gen)
                else {
                    phase = .ended
                    return [.ended(.protocolViolation("the host sent a fresh room secret that is not 32 bytes"))]
                }
                grant = fresh
                return [.newBroadcastKey]
            }
            guard let next = current.ratcheted(to: rekey.gen) else {
                phase = .ended
                return [.ended(.protocolViolation("the host moved the room secret too far ahead"))]
            }
            grant = next
            return [.newBroadcastKey]
        case (.joined, .error(let info)) where info.code == ErrorCode.replaced.rawValue:
            phase = .ended
            return [.ended(.refused(info))]
        case (.joined, .error(let info)):
            return [.show(.notice(info.message.description))]
        case (.joined, .handover(let handover)):
            // Equal is allowed: a host yielding to an equal epoch with the stronger claim.
            guard handover.epoch >= (roster?.epoch ?? 0) else {
                phase = .ended
                return [.ended(.protocolViolation("host handed over to an older epoch"))]
            }
            phase = .ended
            return [.ended(.handover(handover))]
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

    private mutating func welcomed(_ welcome: Welcome, now: Moment) -> [Action] {
        // The same room, and never an older generation (a fresh secret need not follow from the
        // one this member holds: the host proved itself on this link).
        guard let offered = welcome.grant, grant.map({ $0.mayMove(to: offered) }) ?? true else {
            phase = .ended
            return [.ended(.protocolViolation("the host's welcome names another room or a bad room secret"))]
        }
        guard welcome.you.node == me, welcome.you.name == name else {
            phase = .ended
            return [.ended(.protocolViolation("the host's welcome does not give this member its own name"))]
        }
        grant = offered
        if claim == nil, welcome.you.hasValidClaim(room: offered.roomID) { claim = welcome.you.claim }
        for line in unsigned {
            outbox.append(Chat(signedBy: identity, room: offered.roomID, seq: line.seq, name: name, text: line.text, kind: line.kind))
        }
        unsigned = []
        // Lines signed under a name this member has since left (a rename while they waited for a
        // host) are signed again under its name now: nobody has shown them yet.
        outbox = outbox.map { chat in
            chat.name == name ? chat : Chat(signedBy: identity, room: offered.roomID, seq: chat.id.seq, name: name, text: chat.text,
                                            kind: chat.chatKind)
        }
        phase = .joined
        let firstEntry = you == nil
        let (checked, refusedEntries) = verifiedRoster(welcome.roster, room: offered.roomID)
        let before = roster
        roster = checked
        you = welcome.you
        var actions: [Action] = refusedEntries
        if !firstEntry, let before, checked.host != before.host, hostShownForEpoch != checked.epoch,
           let host = checked.members.first(where: { $0.node == checked.host }) {
            hostShownForEpoch = checked.epoch
            // The previous host, unless it is in the new roster (a split healed: it did not leave).
            let gone = checked.members.contains { $0.node == before.host } ? nil : before.members.first { $0.node == before.host }
            actions.append(.show(.hostChanged(previous: gone, host: host,
                                              epoch: checked.epoch, time: now.wallMillis)))
        }
        let records = pendingHistory.sorted { $0.seq < $1.seq }
        pendingHistory = []
        var toPush: [ChatRecord] = []
        if let from = welcome.resumeFrom {
            // The new host's log wins from `from` on; what this log holds there and the host's
            // does not goes back to the host as a push.
            let incoming = Set(records.map(\.id))
            toPush = log.truncate(from: from).filter { !incoming.contains($0.id) }
        }
        for record in records { actions += take(record, replayed: firstEntry) }
        if firstEntry {
            actions.append(.show(.entered(you: welcome.you, roster: checked)))
        }
        lastSent = now.monotonic
        var batch: [ChatRecord] = []
        var batchBytes = 0
        for record in toPush {
            let size = record.approximateSize + 64
            if !batch.isEmpty && (batchBytes + size > 48 * 1024 || batch.count >= Resume.maximumTail) {
                actions.append(.send(.push(Push(records: batch))))
                batch = []
                batchBytes = 0
            }
            batch.append(record)
            batchBytes += size
        }
        // After a resume the host waits for a push (empty when there is nothing to give back)
        // before it numbers anything new.
        if !batch.isEmpty || (welcome.resumeFrom != nil && toPush.isEmpty) { actions.append(.send(.push(Push(records: batch)))) }
        // Anything typed meanwhile, or sent to a host that never echoed it, goes out now, in order.
        outbox.removeAll { log.isDuplicate($0.id) }
        actions += outbox.map { .send(.chat($0)) }
        return actions
    }

    /// A sequenced record from the host: stored, and shown unless this member has shown it
    /// before (under another sequence number, before a host change).
    private mutating func take(_ record: ChatRecord, replayed: Bool) -> [Action] {
        guard let grant, ChatSignature.verify(record, room: grant.roomID) else {
            return [.show(.notice("dropped a message shown as from \(record.from): its signature does not verify"))]
        }
        if record.id.node == me { outbox.removeAll { $0.id == record.id } }
        let seenBefore = log.isDuplicate(record.id)
        guard log.apply(record) else { return [] }
        guard !seenBefore else { return [] }
        guard let shown = shownName(of: record) else {
            return [.show(.notice("dropped a message from \(record.from): it is signed by the key of another member of the room"))]
        }
        var display = record
        display.from = shown
        return [.show(.message(display, replayed: replayed))]
    }

    func shownName(of record: ChatRecord) -> String? {
        NameRule.shownName(of: record, members: roster?.members ?? [], formerNames: formerNames[record.id.node, default: []])
    }

    /// The roster with every entry whose name is not its own key's claim left out (and said).
    private func verifiedRoster(_ roster: RosterSnapshot, room: RoomID) -> (RosterSnapshot, [Action]) {
        var checked = roster
        var kept: [Member] = []
        var keptNames: Set<String> = []  // skeletons: one pass, not one per pair of members
        var notices: [Action] = []
        for member in roster.members {
            let skeleton = NameRule.skeleton(member.name)
            if member.node == me || member.hasValidClaim(room: room) && !keptNames.contains(skeleton) {
                kept.append(member)
                keptNames.insert(skeleton)
            } else {
                notices.append(.show(.notice("left \(member.name) out of the room's list: that member's key did not claim the name")))
            }
        }
        checked.members = kept
        return (checked, notices)
    }

    public mutating func linkClosed() -> [Action] {
        guard phase != .ended else { return [] }
        phase = .ended
        return [.ended(.hostLost("the connection to the host closed"))]
    }

    /// Whether a `tick` at `now` would find the host silent for the dead-link time. The member
    /// then asks its transport when bytes last arrived from the host (`dataArrived`), as the
    /// host does for its members (`HostRoom.silentLinks`).
    public func isHostSilent(now: Moment) -> Bool {
        phase != .ended && now.monotonic - lastHeard >= timings.deadAfter
    }

    /// Bytes from the host reached this member's machine at `instant`, read yet or not.
    public mutating func dataArrived(at instant: Duration) {
        lastHeard = max(lastHeard, instant)
    }

    public mutating func tick(now: Moment) -> [Action] {
        guard phase != .ended else { return [] }
        if timings.woke(previousTick: lastTick, now: now.monotonic) { lastHeard = now.monotonic }
        lastTick = now.monotonic
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

    /// Ends the current link from this side (the peer moves to another host).
    public mutating func abandonLink() {
        phase = .ended
    }
}
