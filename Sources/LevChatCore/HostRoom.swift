/// The host's room state machine. It decides; the caller carries out the returned actions (sends,
/// closes, local display). No I/O and no clock of its own, so it runs under a fake clock in tests.
///
/// A host is either the room's first (`init(host:...)`) or a member promoted after the host left
/// or was lost (`init(promoting:...)`). A promoted host first collects the members of the last
/// roster for a short window: they `resume` with their log's tail, the logs are reconciled, and
/// only then does it sequence new messages and announce itself (Docs/MIGRATION.md).
public struct HostRoom: Sendable {
    public enum Action: Equatable, Sendable {
        case send(ConnectionID, WireMessage)
        /// To each of these connections; the message is encoded once for all of them.
        case broadcast(WireMessage, to: [ConnectionID])
        case close(ConnectionID, reason: String)
        case show(RoomEvent)
        /// The room secret moved to a new generation (`grant`): broadcasts from here on are sealed
        /// with its key, and handshakes answered with it.
        case newBroadcastKey
    }

    struct Link: Sendable {
        var node: NodeID?
        var lastHeard: Duration
        var lastSent: Duration
        /// After a `resume` whose log simply continues this one: the sequence its `push` must start
        /// at to be taken in order rather than appended as late.
        var pushBase: Int?
        /// The member's names before its last few `/nick`s: a line it signed just before a rename
        /// may still arrive under one.
        var formerNames: [String] = []
        /// When its last renames were asked for (at most `renamesPerMinute` a minute).
        var renames: [Duration] = []
        /// Records it pushed on this link, each a signature to verify (at most `pushedRecordsPerLink`).
        var pushed = 0
        /// The source its connection came from (`GuessBudget.source`), once it joined.
        var source: String?
        /// The link's channel binding, which the `join` or `resume` must sign (`LinkProof`).
        var binding: [UInt8] = []
    }

    /// The window after a promotion: who is expected back, and messages held until it closes so
    /// that no new sequence number can clash with one a member brings back.
    struct Collection: Sendable {
        var deadline: Duration
        var expected: [Member]
        var previousHost: Member?
        var heldChats: [(node: NodeID, chat: Chat)] = []
        /// Resumed members whose `push` (empty or not) has not arrived: the window stays open for
        /// them, so what they bring keeps its sequence numbers.
        var awaitingPush: Set<NodeID> = []
        var isComplete: Bool { expected.isEmpty && awaitingPush.isEmpty }
    }

    public private(set) var log: RoomLog
    public private(set) var epoch: Int
    public private(set) var me: Member
    /// Members by join ordinal, the host among them.
    public private(set) var members: [Member] { didSet { joined = nil } }
    /// The host's own messages not sequenced yet (typed while it was still a member, or during
    /// the collection window).
    public private(set) var ownPending: [Chat] = []
    private var collection: Collection?
    /// Members whose links died: after a split they may be with another host of this room, so the
    /// host keeps asking them for a while (partition heal without waiting for mDNS).
    private var recentlyLost: [(member: Member, at: Duration)] = []
    /// Someone left or was lost since the secret last moved: the next step is a fresh secret
    /// (`settleSecret`, at the end of the call that saw the departure).
    private var freshSecretOwed = false
    private var churn: ChurnLimiter
    private var links: [ConnectionID: Link] = [:]
    /// The previous `tick` (`RoomTimings.freezeGap`).
    private var lastTick: Duration?
    private var linkOfNode: [NodeID: ConnectionID] = [:] { didSet { joined = nil } }
    /// The joined members' links in join order, kept between changes of `members` and
    /// `linkOfNode`: each chat line goes to all of them, and working the list out per line was
    /// a dictionary lookup per member (Docs/BENCHMARKS.md, "The room's own work per delivery").
    private var joined: [ConnectionID]?
    /// When a broadcast last went to every joined link: it counts as sent on each of them, so a
    /// chat line need not touch every link's record (`tick`'s heartbeats).
    private var lastBroadcast: Duration?
    private var nextOrdinal: Int
    public private(set) var nextSenderSeq = 1
    /// This peer's signing key, and the room's id and secret (handed to every member in `welcome`).
    public let identity: PeerIdentity
    public private(set) var grant: RoomGrant
    private let limits: RoomLimits
    private let timings: RoomTimings

    public init(identity: PeerIdentity, name: String, endpoints: [String], grant: RoomGrant, epoch: Int = 1,
                limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings(), firstSenderSeq: Int = 1) {
        self.identity = identity
        self.grant = grant
        nextSenderSeq = firstSenderSeq
        me = Member(node: identity.node, name: name, ordinal: 1, endpoints: endpoints, key: Base64.encode(identity.publicKey),
                    claim: identity.claimName(name, room: grant.roomID, counter: firstSenderSeq))
        members = [me]
        nextOrdinal = 2
        self.epoch = epoch
        self.limits = limits
        self.timings = timings
        churn = ChurnLimiter(policy: limits.churn)
        log = RoomLog(limits: limits)
    }

    /// A member becomes host: `me` keeps its ordinal, `log` and `previous` (the last roster it
    /// saw) come from its member session, `outbox` are its own unechoed messages.
    public init(promoting me: Member, identity: PeerIdentity, grant: RoomGrant, log: RoomLog, previous: RosterSnapshot,
                epoch: Int, nextSenderSeq: Int, outbox: [Chat], window: Duration, now: Moment,
                limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings()) {
        var me = me
        me.key = Base64.encode(identity.publicKey)
        // A host change moves the secret forward; the members resuming here move with it.
        let grant = grant.ratcheted(to: grant.generation + 1) ?? grant
        if !me.hasValidClaim(room: grant.roomID) {
            me.claim = identity.claimName(me.name, room: grant.roomID, counter: (me.claim?.counter ?? 0) + 1)
        }
        self.me = me
        self.identity = identity
        self.grant = grant
        self.log = log
        self.epoch = epoch
        self.nextSenderSeq = nextSenderSeq
        self.limits = limits
        self.timings = timings
        churn = ChurnLimiter(policy: limits.churn)
        members = [me]
        nextOrdinal = max(previous.members.map(\.ordinal).max() ?? 0, me.ordinal) + 1
        ownPending = outbox.filter { !log.isDuplicate($0.id) }
        let expected = previous.members.filter { $0.node != me.node && $0.node != previous.host }
        collection = Collection(deadline: now.monotonic + window, expected: expected,
                                previousHost: previous.members.first { $0.node == previous.host })
    }

    public var roster: RosterSnapshot { RosterSnapshot(epoch: epoch, host: me.node, members: members) }

    /// Still collecting members after a promotion.
    public var isCollecting: Bool { collection != nil }

    /// The events the host shows itself when the room is made.
    public var createdEvent: RoomEvent { .entered(you: me, roster: roster) }

    /// A new link; `binding` is its channel binding (`SecureLink.binding`), which the member's
    /// `join` or `resume` signs.
    public mutating func connectionOpened(_ id: ConnectionID, binding: [UInt8] = [], now: Moment) {
        links[id] = Link(node: nil, lastHeard: now.monotonic, lastSent: now.monotonic, binding: binding)
    }

    /// `observedHost` is the address the connection came from; it is paired with the member's
    /// listening port to make an endpoint others can reach.
    ///
    /// `pushVerdicts`, for a `push`: whether each record's signature verifies, checked by the
    /// caller off the event loop in the order of `push.records`; the room checks them otherwise.
    public mutating func received(_ message: WireMessage, from id: ConnectionID, observedHost: String, now: Moment,
                                  pushVerdicts: [Bool]? = nil) -> [Action] {
        let actions = handle(message, from: id, observedHost: observedHost, now: now, pushVerdicts: pushVerdicts)
        return actions + settleSecret(now: now)
    }

    private mutating func handle(_ message: WireMessage, from id: ConnectionID, observedHost: String, now: Moment,
                                 pushVerdicts: [Bool]?) -> [Action] {
        guard var link = links[id] else { return [] }
        link.lastHeard = now.monotonic
        links[id] = link
        guard let node = link.node else {
            switch message {
            case .join(let join): return admit(join, on: id, observedHost: observedHost, now: now)
            case .resume(let resume): return readmit(resume, on: id, observedHost: observedHost, now: now)
            case .probe:
                links[id] = nil
                let answer = Redirect(endpoints: me.endpoints, role: .host, epoch: epoch, node: me.node, ordinal: me.ordinal)
                return [.send(id, .redirect(answer)), .close(id, reason: "answered a probe")]
            default:
                return [.close(id, reason: "sent \(message.typeName) before join")]
            }
        }
        switch message {
        case .chat(let chat):
            guard chat.id.node == node else { return [.close(id, reason: "chat with another member's id")] }
            // A line is said under the member's own name (or the one it had just before a rename).
            guard let member = members.first(where: { $0.node == node }), chat.name == member.name || link.formerNames.contains(chat.name) else {
                return [.send(id, .error(ErrorInfo(code: .protocolError, message: "a chat under a name that is not yours"))),
                        .close(id, reason: "chat under another name")]
            }
            // No signature check here: the member's key signed this link when it joined
            // (`LinkProof`), so the line is its own; every member verifies the signature before
            // showing it (Docs/PROTOCOL.md, "Link proofs"; Docs/ARCHITECTURE.md).
            guard collection == nil else {
                collection?.heldChats.append((node, chat))
                return []
            }
            return sequence(chat, from: node, replyTo: id, now: now)
        case .push(let push):
            links[id]?.pushed += push.records.count
            guard (links[id]?.pushed ?? 0) <= HostRoom.pushedRecordsPerLink else {
                return [.close(id, reason: "pushed more records than a resume can need")]
            }
            return take(push, from: id, verdicts: pushVerdicts, now: now)
        case .nick(let rename):
            return self.rename(node, to: rename.name, claim: rename.claim, asking: id, now: now)
        case .bye:
            return remove(id, reason: "quit", now: now)
        case .ping, .unknown:
            return []
        default:
            return [.close(id, reason: "unexpected \(message.typeName) from a member")]
        }
    }

    public mutating func connectionClosed(_ id: ConnectionID, now: Moment) -> [Action] {
        remove(id, reason: "lost", now: now, alreadyClosed: true) + settleSecret(now: now)
    }

    /// The links a `tick` at `now` would find silent for the dead-link time. Before it ticks, the
    /// host asks its transport when bytes last arrived on each of these (`dataArrived`): a host
    /// too starved of CPU to read its sockets must not take the members' unread pings for silence
    /// (Docs/MIGRATION.md, "Failure detection").
    public func silentLinks(now: Moment) -> [ConnectionID] {
        links.filter { now.monotonic - $0.value.lastHeard >= timings.deadAfter }.map(\.key).sorted { $0.raw < $1.raw }
    }

    /// Bytes from `id`'s member reached this host's machine at `instant` (the kernel took them,
    /// whether the host has read them yet or not): the link is not silent since then.
    public mutating func dataArrived(on id: ConnectionID, at instant: Duration) {
        guard let heard = links[id]?.lastHeard, instant > heard else { return }
        links[id]?.lastHeard = instant
    }

    /// Heartbeats, dead-link detection and the end of the collection window; call about every
    /// heartbeat / 4.
    public mutating func tick(now: Moment) -> [Action] {
        var actions: [Action] = []
        if timings.woke(previousTick: lastTick, now: now.monotonic) {
            for id in links.keys { links[id]?.lastHeard = now.monotonic }
        }
        lastTick = now.monotonic
        for (id, link) in links.sorted(by: { $0.key.raw < $1.key.raw }) {
            // Only joined links (those with a node) received the room-wide broadcasts.
            let lastSent = link.node == nil ? link.lastSent : max(link.lastSent, lastBroadcast ?? link.lastSent)
            if now.monotonic - link.lastHeard >= timings.deadAfter {
                actions += remove(id, reason: "lost", now: now)
            } else if now.monotonic - lastSent >= timings.heartbeat {
                actions.append(send(.ping(Ping(lastSeq: log.lastSeq)), to: id, now: now))
            }
        }
        if let collection, now.monotonic >= collection.deadline {
            actions += finishCollecting(now: now)
        }
        return actions + settleSecret(now: now)
    }

    /// The host's own chat line.
    public mutating func post(_ text: String, kind: ChatKind = .text, now: Moment) -> [Action] {
        guard text.utf8.count <= limits.maxTextBytes else {
            return [.show(.notice("message not sent: it is over \(limits.maxTextBytes) bytes"))]
        }
        let chat = Chat(signedBy: identity, room: grant.roomID, seq: nextSenderSeq, name: me.name, text: text, kind: kind)
        nextSenderSeq += 1
        guard collection == nil else {
            ownPending.append(chat)
            return []
        }
        return sequenceOwn(chat, now: now)
    }

    /// The host's own `/nick`.
    public mutating func renameSelf(to name: String, now: Moment) -> [Action] {
        let claim = identity.claimName(name, room: grant.roomID, counter: (me.claim?.counter ?? 0) + 1)
        return rename(me.node, to: name, claim: claim, asking: nil, now: now)
    }

    /// A member (or the host itself, `asking` nil) takes a new name: valid and nobody else's, as
    /// for a joiner. Everyone hears it; a refusal goes to whoever asked.
    private mutating func rename(_ node: NodeID, to rawName: String, claim: NameClaim, asking id: ConnectionID?, now: Moment) -> [Action] {
        // Unlike `refuse`, the asker stays: a name it cannot have is no reason to close its link.
        func decline(_ code: ErrorCode, _ message: String) -> [Action] {
            guard let id else { return [.show(.notice(message))] }
            return [send(.error(ErrorInfo(code: code, message: message)), to: id, now: now)]
        }
        let name: String
        do {
            name = try NameRule.validate(rawName)
        } catch {
            return decline(.protocolError, "name not changed: \(error.description)")
        }
        guard collection == nil else {
            return decline(.protocolError, "name not changed: the room is changing hosts; try again in a moment")
        }
        guard let index = members.firstIndex(where: { $0.node == node }) else { return [] }
        if let id, var link = links[id] {
            link.renames.removeAll { now.monotonic - $0 >= .seconds(60) }
            guard link.renames.count < HostRoom.renamesPerMinute else {
                return decline(.protocolError, "name not changed: at most \(HostRoom.renamesPerMinute) new names a minute")
            }
            link.renames.append(now.monotonic)
            links[id] = link
        }
        let before = members[index]
        guard before.name != name else { return decline(.protocolError, "you are already called \(name)") }
        var after = before
        after.name = name
        after.claim = claim
        guard claim.counter > (before.claim?.counter ?? 0), after.hasValidClaim(room: grant.roomID) else {
            return decline(.protocolError, "name not changed: the claim to \(name) is not signed by your key")
        }
        if members.contains(where: { $0.node != node && NameRule.sameName($0.name, name) }) {
            return decline(.nameTaken, "name not changed: \(name) is taken in this room")
        }
        members[index] = after
        if let id, var link = links[id] {
            link.formerNames = Array((link.formerNames + [before.name]).suffix(4))
            links[id] = link
        }
        if node == me.node { me = after }
        let presence = Presence(event: .renamed, member: members[index], reason: nil, time: now.wallMillis, previous: before)
        return broadcast(.presence(presence), except: nil, now: now)
            + [.show(.renamed(from: before, to: members[index], time: now.wallMillis))]
    }

    /// The host leaves. With members left it hands the room to the most senior of them (lowest
    /// ordinal): everything sequenced so far has already been written to it, ahead of the
    /// `handover`, so it starts with this host's whole log. With nobody left the room just ends.
    public mutating func leave(now: Moment) -> [Action] {
        // A host leaving inside its collection window first numbers what it holds, so its own
        // held lines reach the successor with the rest of the log.
        let settled = collection == nil ? [] : finishCollecting(now: now)
        guard let successor = members.filter({ $0.node != me.node }).min(by: { $0.ordinal < $1.ordinal }) else {
            return settled + closeRoom()
        }
        return settled + handOver(to: successor, epoch: epoch + 1)
    }

    /// Partition heal: another host of this room has the higher claim; every member is told to
    /// go there, and this peer will follow as a member.
    public mutating func yield(to host: Member, epoch: Int) -> [Action] {
        handOver(to: host, epoch: epoch)
    }

    /// The host leaves and, with no successor, closes the room.
    public mutating func closeRoom() -> [Action] {
        freshSecretOwed = false
        let recipients = joinedLinks(except: nil)
        let all = links.keys.sorted { $0.raw < $1.raw }
        links.removeAll()
        linkOfNode.removeAll()
        members = [me]
        return (recipients.isEmpty ? [] : [.broadcast(.bye(Bye(reason: "room_closed")), to: recipients)])
            + all.map { .close($0, reason: "room closed") }
    }

    /// Members close their links when they read the `handover`; closing first from this side
    /// could reset a link before they read it.
    private mutating func handOver(to host: Member, epoch: Int) -> [Action] {
        freshSecretOwed = false
        let recipients = joinedLinks(except: nil)
        let unjoined = links.filter { $0.value.node == nil }.keys.sorted { $0.raw < $1.raw }
        links.removeAll()
        linkOfNode.removeAll()
        members = [me]
        return (recipients.isEmpty ? [] : [.broadcast(.handover(Handover(epoch: epoch, host: host)), to: recipients)])
            + unjoined.map { .close($0, reason: "handed the room over") }
    }

    /// What every newcomer must pass: a valid name nobody in the room has, and room for one more.
    private mutating func admissible(_ rawName: String, claim: NameClaim, node: NodeID, key: String,
                                     on id: ConnectionID) -> Result<String, Refusal> {
        let name: String
        do {
            name = try NameRule.validate(rawName)
        } catch {
            return .failure(Refusal(actions: refuse(id, .protocolError, "invalid name: \(error.description)")))
        }
        guard claim.verify(room: grant.roomID, node: node, name: name, key: key) else {
            return .failure(Refusal(actions: refuse(id, .protocolError, "the claim to the name \(name) is not signed by your key")))
        }
        if members.contains(where: { NameRule.sameName($0.name, name) }) {
            return .failure(Refusal(actions: refuse(id, .nameTaken, "the name \(name) is taken in this room")))
        }
        guard members.count < limits.maxMembers else {
            return .failure(Refusal(actions: refuse(id, .roomFull, "the room is full (\(limits.maxMembers) members)")))
        }
        return .success(name)
    }

    /// A member renames at most this often: each rename is a presence to every member.
    public static let renamesPerMinute = 5
    /// A resume needs to push at most what a log holds beyond another (its history, twice over):
    /// more on one link is a member making the host verify signatures for nothing.
    public static let pushedRecordsPerLink = 2 * RoomLimits().historyCount

    struct Refusal: Error {
        var actions: [Action]
    }

    private mutating func admit(_ join: Join, on id: ConnectionID, observedHost: String, now: Moment) -> [Action] {
        guard HostRoom.keyMatches(join.key, join.node) else {
            return refuse(id, .protocolError, "node id is not derived from the public key")
        }
        guard join.node != me.node else { return refuse(id, .protocolError, "that node id is the host's") }
        guard LinkProof.verify(join.proof, key: join.key, node: join.node, room: grant.roomID, binding: links[id]?.binding ?? []) else {
            return refuse(id, .protocolError, "a join must prove its key on this link")
        }
        // The same key joining again (its run restarted before this side saw the old link die):
        // the proof above is that key's, made for this link, so the old link goes and the old
        // entry with it. (A name claim alone proves nothing here: every roster carries it.)
        var actions = replaceStaleLink(of: join.node, from: observedHost, now: now)
        let name: String
        switch admissible(join.name, claim: join.claim, node: join.node, key: join.key, on: id) {
        case .success(let valid): name = valid
        case .failure(let refusal): return actions + refusal.actions
        }
        if let refusal = arrival(of: join.node, from: observedHost, on: id, counted: true, now: now) { return actions + refusal }
        let member = Member(node: join.node, name: name, ordinal: nextOrdinal,
                            endpoints: endpoints(observedHost, join.listenPort, join.endpoints), key: join.key, claim: join.claim)
        nextOrdinal += 1
        // Every join moves the secret forward: the newcomer gets the new generation and cannot
        // open what was broadcast before it came.
        actions += advanceSecret(to: grant.generation + 1, now: now)
        add(member, on: id)

        actions += log.historyChunks().map { send(.history(HistoryChunk(records: $0)), to: id, now: now) }
        actions.append(send(.welcome(Welcome(you: member, roster: roster, historyCount: log.history.count, grant: grant)), to: id, now: now))
        return actions + announceJoined(member, except: id, now: now)
    }

    /// A member of the room coming back after a host change (or after being cut off): it keeps
    /// its ordinal, gets what it missed from where the logs part, and pushes what this log lacks.
    private mutating func readmit(_ resume: Resume, on id: ConnectionID, observedHost: String, now: Moment) -> [Action] {
        guard resume.node != me.node else { return refuse(id, .protocolError, "that node id is the host's") }
        guard HostRoom.keyMatches(resume.key, resume.node) else {
            return refuse(id, .protocolError, "node id is not derived from the public key")
        }
        guard LinkProof.verify(resume.proof, key: resume.key, node: resume.node, room: grant.roomID, binding: links[id]?.binding ?? []) else {
            return refuse(id, .protocolError, "a resume must prove its key on this link")
        }
        var actions = replaceStaleLink(of: resume.node, from: observedHost, now: now)
        if resume.gen > grant.generation {
            // A member ahead of this host (it saw joins this side did not): the room moves forward.
            guard resume.gen - grant.generation <= RoomGrant.maximumStep else {
                return actions + refuse(id, .protocolError, "a room secret generation too far ahead")
            }
            actions += advanceSecret(to: resume.gen, now: now)
        }
        let name: String
        switch admissible(resume.name, claim: resume.claim, node: resume.node, key: resume.key, on: id) {
        case .success(let valid): name = valid
        case .failure(let refusal): return actions + refusal.actions
        }
        if let refusal = arrival(of: resume.node, from: observedHost, on: id, counted: collection == nil, now: now) {
            return actions + refusal
        }
        let ordinalFree = resume.ordinal >= 1 && resume.ordinal < nextOrdinal
            && !members.contains { $0.ordinal == resume.ordinal }
        let member = Member(node: resume.node, name: name, ordinal: ordinalFree ? resume.ordinal : nextOrdinal,
                            endpoints: endpoints(observedHost, resume.listenPort, resume.endpoints), key: resume.key,
                            claim: resume.claim)
        if !ordinalFree { nextOrdinal += 1 }
        add(member, on: id)

        let from = log.divergence(lastSeq: resume.lastSeq, tail: resume.tail.suffix(Resume.maximumTail))
        links[id]?.pushBase = from == log.lastSeq + 1 ? from : nil
        let chunks = log.historyChunks(from: from)
        actions += chunks.map { send(.history(HistoryChunk(records: $0)), to: id, now: now) }
        let welcome = Welcome(you: member, roster: roster, historyCount: chunks.reduce(0) { $0 + $1.count }, resumeFrom: from,
                              grant: grant)
        actions.append(send(.welcome(welcome), to: id, now: now))
        if var collection {
            collection.expected.removeAll { $0.node == member.node }
            collection.awaitingPush.insert(member.node)
            self.collection = collection
            return actions
        }
        return actions + announceJoined(member, except: id, now: now)
    }

    /// Records a member holds and this log lacks. When they continue this log exactly (the member
    /// saw more of the old host than this peer did) they keep their sequence numbers; otherwise
    /// they are appended with new ones and marked late.
    private mutating func take(_ push: Push, from id: ConnectionID, verdicts: [Bool]?, now: Moment) -> [Action] {
        var actions: [Action] = []
        var inOrder = links[id]?.pushBase == log.lastSeq + 1
        let verdicts = verdicts?.count == min(push.records.count, Resume.maximumTail) ? verdicts : nil
        for (index, record) in push.records.prefix(Resume.maximumTail).enumerated() where !log.isDuplicate(record.id) {
            guard record.text.utf8.count <= limits.maxTextBytes, (try? NameRule.validate(record.from)) != nil else { continue }
            // A pushed record must carry its sender's own signature: nobody, member or host,
            // puts words in another's mouth at a host change.
            guard verdicts?[index] ?? ChatSignature.verify(record, room: grant.roomID) else {
                actions.append(.show(.notice("refused a record pushed by a member: its signature does not verify")))
                continue
            }
            // A line of someone in the room must be under a name it holds or held: a member cannot
            // push words under another member's name, even signed with its own key.
            let formerNames = linkOfNode[record.id.node].flatMap { links[$0]?.formerNames } ?? []
            guard let shown = NameRule.shownName(of: record, members: members, formerNames: formerNames) else {
                actions.append(.show(.notice("refused a record pushed by a member: it is under a name its sender does not hold")))
                continue
            }
            let taken: ChatRecord?
            if inOrder && record.seq == log.lastSeq + 1 {
                taken = log.apply(record) ? record : nil
            } else {
                inOrder = false
                taken = log.sequence(Chat(id: record.id, name: record.from, text: record.text, kind: record.kind, sig: record.sig),
                                     key: record.key, time: record.time, late: true)
            }
            guard var taken else { continue }
            actions += broadcast(.msg(taken), except: nil, now: now)
            taken.from = shown
            actions.append(.show(.message(taken, replayed: false)))
        }
        links[id]?.pushBase = inOrder ? log.lastSeq + 1 : nil
        if let node = links[id]?.node, var collection {
            collection.awaitingPush.remove(node)
            self.collection = collection
            if collection.isComplete { actions += finishCollecting(now: now) }
        }
        return actions
    }

    /// The collection window is over: announce the new host and roster, say who did not come
    /// back, then sequence what was held.
    private mutating func finishCollecting(now: Moment) -> [Action] {
        guard let collection else { return [] }
        self.collection = nil
        // The previous host is gone, and it could compute the generation this host started at.
        freshSecretOwed = true
        var actions: [Action] = []
        let presence = Presence(event: .host, member: me, reason: nil, time: now.wallMillis, roster: roster,
                                previous: collection.previousHost)
        actions += broadcast(.presence(presence), except: nil, now: now)
        actions.append(.show(.hostChanged(previous: collection.previousHost, host: me, epoch: epoch, time: now.wallMillis)))
        for missing in collection.expected {
            let left = Presence(event: .left, member: missing, reason: "lost", time: now.wallMillis)
            actions += broadcast(.presence(left), except: nil, now: now)
            actions.append(.show(.left(missing, reason: "lost", time: now.wallMillis)))
        }
        // Those who did not come back may be alive under another host of this room (a split that
        // promoted one on each side): the partition healer asks them where (`lostMembers`), the
        // most senior first, as those are the likeliest to be hosts themselves. Without them a
        // promoted host that does not advertise never found the others (Docs/MIGRATION.md).
        for missing in collection.expected.sorted(by: { $0.ordinal > $1.ordinal }) { noteLost(missing, now: now) }
        let own = ownPending
        ownPending = []
        for chat in own { actions += sequenceOwn(chat, now: now) }
        for (node, chat) in collection.heldChats {
            guard let id = linkOfNode[node] else { continue }
            actions += sequence(chat, from: node, replyTo: id, now: now)
        }
        return actions
    }

    private func endpoints(_ observedHost: String, _ listenPort: Int, _ reported: [String]) -> [String] {
        var endpoints: [String] = []
        if (1...65535).contains(listenPort) {
            endpoints.append(Endpoint.format(host: observedHost, port: listenPort))
        }
        for endpoint in reported.prefix(8) where endpoint.utf8.count <= 80 && !endpoints.contains(endpoint) {
            endpoints.append(endpoint)
        }
        return endpoints
    }

    /// The members lost within `window`, most recent first.
    public func lostMembers(within window: Duration, now: Moment) -> [Member] {
        recentlyLost.filter { now.monotonic - $0.at <= window }.reversed().map(\.member)
    }

    /// At most this many lost members are remembered (the newest).
    public static let lostMembersKept = 16

    private mutating func noteLost(_ member: Member, now: Moment) {
        recentlyLost.removeAll { $0.member.node == member.node }
        recentlyLost.append((member, now.monotonic))
        if recentlyLost.count > HostRoom.lostMembersKept { recentlyLost.removeFirst() }
    }

    private mutating func add(_ member: Member, on id: ConnectionID) {
        recentlyLost.removeAll { $0.member.node == member.node }
        members.append(member)
        members.sort { $0.ordinal < $1.ordinal }
        links[id]?.node = member.node
        linkOfNode[member.node] = id
    }

    /// Moves the room secret forward to `generation`: the members linked now hear it under the
    /// old broadcast key, then everything is sealed under the new one.
    private mutating func advanceSecret(to generation: Int, now: Moment) -> [Action] {
        guard let next = grant.ratcheted(to: generation), generation > grant.generation else { return [] }
        let told = broadcast(.rekey(Rekey(gen: generation)), except: nil, now: now)
        grant = next
        return told + [.newBroadcastKey]
    }

    /// Churn and places per source (`ChurnLimiter`): nil when `node` may come in from
    /// `observedHost` on `id` (the link is marked with its source), otherwise the refusal.
    private mutating func arrival(of node: NodeID, from observedHost: String, on id: ConnectionID, counted: Bool, now: Moment) -> [Action]? {
        let source = GuessBudget.source(of: observedHost)
        let held = links.values.filter { $0.node != nil && $0.source == source }.count
        switch churn.arrive(from: observedHost, node: node, placesHeld: held, counted: counted, now: now.monotonic) {
        case nil:
            links[id]?.source = source
            return nil
        case .tooOften(let wait)?:
            let seconds = max(1, Int(wait.components.seconds) + 1)
            return refuse(id, .limited, "too many joins from your address or key in the last minute; try again in \(seconds) s")
        case .noPlaceForSource(let places)?:
            return refuse(id, .roomFull, "this room takes at most \(places) members from one address")
        }
    }

    /// After a departure: the next generation's secret is fresh, sent to each member on its own
    /// link (sealed with that link's key, which the one who left cannot compute), then every
    /// broadcast is sealed under it. Several departures in one call make one fresh secret.
    private mutating func settleSecret(now: Moment) -> [Action] {
        guard freshSecretOwed, collection == nil else { return [] }
        freshSecretOwed = false
        let next = grant.fresh()
        let told = joinedLinks(except: nil).map { send(.rekey(Rekey(gen: next.generation, secret: next.secret)), to: $0, now: now) }
        grant = next
        return told + [.newBroadcastKey]
    }

    /// The same member again: its old link is dead even if this side has not noticed yet. The
    /// members replace its entry when they hear it join again (`RosterSnapshot.applying`). The
    /// old link is told why, in case it is not dead: another run with the same identity (a copied
    /// state folder) would otherwise come back, take the place in turn, and the two would push
    /// each other out for ever.
    private mutating func replaceStaleLink(of node: NodeID, from observedHost: String, now: Moment) -> [Action] {
        guard let stale = linkOfNode[node] else { return [] }
        links[stale] = nil
        linkOfNode[node] = nil
        members.removeAll { $0.node == node }
        let elsewhere = observedHost.isEmpty ? "" : " from \(observedHost)"
        return [.send(stale, .error(ErrorInfo(code: .replaced, message: "your identity joined this room again\(elsewhere), and that link took this one's place"))),
                .close(stale, reason: "replaced by a newer connection of the same member")]
    }

    private mutating func announceJoined(_ member: Member, except id: ConnectionID, now: Moment) -> [Action] {
        let presence = Presence(event: .joined, member: member, reason: nil, time: now.wallMillis)
        return broadcast(.presence(presence), except: id, now: now) + [.show(.joined(member, time: now.wallMillis))]
    }

    private mutating func sequence(_ chat: Chat, from node: NodeID, replyTo id: ConnectionID, now: Moment) -> [Action] {
        guard chat.text.utf8.count <= limits.maxTextBytes else {
            return [send(.error(ErrorInfo(code: .tooLong, message: "message not sent: it is over \(limits.maxTextBytes) bytes")), to: id, now: now)]
        }
        guard let member = members.first(where: { $0.node == node }), let key = member.key,
              let record = log.sequence(chat, key: key, time: now.wallMillis)
        else { return [] }
        return broadcast(.msg(record), except: nil, now: now) + [.show(.message(record, replayed: false))]
    }

    private mutating func sequenceOwn(_ chat: Chat, now: Moment) -> [Action] {
        guard let record = log.sequence(chat, key: me.key ?? "", time: now.wallMillis) else { return [] }
        return broadcast(.msg(record), except: nil, now: now) + [.show(.message(record, replayed: false))]
    }

    private mutating func remove(_ id: ConnectionID, reason: String, now: Moment, alreadyClosed: Bool = false) -> [Action] {
        guard let link = links.removeValue(forKey: id) else { return [] }
        var actions: [Action] = alreadyClosed ? [] : [.close(id, reason: reason == "quit" ? "member left" : "link silent for \(timings.deadAfter)")]
        guard let node = link.node, linkOfNode[node] == id, let index = members.firstIndex(where: { $0.node == node }) else { return actions }
        let member = members.remove(at: index)
        linkOfNode[node] = nil
        freshSecretOwed = true
        if reason == "lost" { noteLost(member, now: now) }
        if var collection {
            collection.awaitingPush.remove(node)
            self.collection = collection
            if collection.isComplete { actions += finishCollecting(now: now) }
            return actions
        }
        let presence = Presence(event: .left, member: member, reason: reason, time: now.wallMillis)
        actions += broadcast(.presence(presence), except: nil, now: now)
        actions.append(.show(.left(member, reason: reason, time: now.wallMillis)))
        return actions
    }

    static func keyMatches(_ key: String, _ node: NodeID) -> Bool {
        Base64.decode(key).flatMap(PeerIdentity.node(for:)) == node
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
        if except == nil {
            lastBroadcast = now.monotonic
        } else {
            for id in recipients { links[id]?.lastSent = now.monotonic }
        }
        return recipients.isEmpty ? [] : [.broadcast(message, to: recipients)]
    }

    private mutating func joinedLinks(except: ConnectionID?) -> [ConnectionID] {
        let all: [ConnectionID]
        if let joined {
            all = joined
        } else {
            all = members.compactMap { linkOfNode[$0.node] }
            joined = all
        }
        guard let except else { return all }
        return all.filter { $0 != except }
    }
}

/// `host:port` text for endpoints, with IPv6 addresses in brackets.
public enum Endpoint {
    public static func format(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Splits `host:port` or `[v6]:port`. Nil when it is not of that form.
    /// An IPv6 link-local address (fe80::/10), with or without its `%scope`.
    public static func isLinkLocal(_ host: String) -> Bool {
        let first = host.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first?.lowercased() ?? ""
        guard host.contains(":"), first.count == 4, first.hasPrefix("fe") else { return false }
        return ["8", "9", "a", "b"].contains(first.dropFirst(2).prefix(1))
    }

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

extension HostRoom {
    /// The room a member takes over when it is promoted at `epoch` (Docs/MIGRATION.md): its
    /// place, name and name claim from the last roster, with this machine's listening endpoints
    /// (`local`) added to those the roster had for it; its log, unconfirmed lines and sender
    /// sequence go on. A member never welcomed (no roster) starts from a roster of itself alone.
    public init(promoting session: MemberSession, node: NodeID, name: String, local: [String], identity: PeerIdentity,
                grant: RoomGrant, epoch: Int, window: Duration, now: Moment,
                limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings()) {
        var you = session.you ?? Member(node: node, name: name, ordinal: 1, endpoints: [])
        you.endpoints += local.filter { !you.endpoints.contains($0) }
        let previous = session.roster ?? RosterSnapshot(epoch: epoch - 1, host: node, members: [you])
        self.init(promoting: you, identity: identity, grant: grant, log: session.log, previous: previous, epoch: epoch,
                  nextSenderSeq: session.nextSenderSeq, outbox: session.outbox, window: window, now: now,
                  limits: limits, timings: timings)
    }
}
