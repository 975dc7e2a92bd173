@testable import LevChatCore

/// Deterministic identities and one room for the state-machine tests: node(n) is the node id of
/// peer(n)'s real Ed25519 key, so every chat and record below carries a real signature.
let testGrant = RoomGrant(roomID: RoomID(hex: "0011223344556677")!, secret: Array(repeating: 7, count: 32))!

private let identities: [PeerIdentity] = (0..<64).map { n in
    try! PeerIdentity(seed: [UInt8(n)] + Array(repeating: 0x5a, count: 31))
}

func peer(_ n: Int) -> PeerIdentity { identities[n] }
func node(_ n: Int) -> NodeID { identities[n].node }

/// The identity behind one of the nodes above.
func identity(of node: NodeID) -> PeerIdentity {
    identities.first { $0.node == node }!
}

func publicKey(of node: NodeID) -> String { Base64.encode(identity(of: node).publicKey) }

/// The names the tests give node(0), node(1), …: host, alice, bob, carol, dave, erin, frank.
func usualName(of node: NodeID) -> String {
    let names = ["host", "alice", "bob", "carol", "dave", "erin", "frank"]
    let n = identities.firstIndex { $0.node == node }!
    return n < names.count ? names[n] : "n\(n)"
}

/// A chat signed by its sender for `testGrant`'s room, under `name` (by default its usual one).
func signedChat(id: MessageID, name: String? = nil, text: String, kind: ChatKind = .text) -> Chat {
    Chat(signedBy: identity(of: id.node), room: testGrant.roomID, seq: id.seq, name: name ?? usualName(of: id.node), text: text, kind: kind)
}

/// A sequenced record carrying its sender's real signature.
func signedRecord(seq: Int, id: MessageID, from: String, text: String, time: Int64, late: Bool? = nil) -> ChatRecord {
    let chat = signedChat(id: id, name: from, text: text)
    return ChatRecord(seq: seq, id: id, from: from, text: text, time: time, late: late, key: publicKey(of: id.node), sig: chat.sig)
}

/// A roster entry with its key and its own signed claim to the name in `testGrant`'s room.
func testMember(node: NodeID, name: String, ordinal: Int, endpoints: [String], counter: Int = 1) -> Member {
    Member(node: node, name: name, ordinal: ordinal, endpoints: endpoints, key: publicKey(of: node),
           claim: nameClaim(node, name, counter: counter))
}

/// `node`'s `LinkProof` for a link opened with no binding (`HostRoom.connectionOpened`'s default),
/// in `testGrant`'s room.
func linkProof(_ node: NodeID) -> String {
    identity(of: node).proveLink(room: testGrant.roomID, binding: [])
}

/// `node`'s signed claim to `name` in `testGrant`'s room.
func nameClaim(_ node: NodeID, _ name: String, counter: Int = 1) -> NameClaim {
    identity(of: node).claimName(name, room: testGrant.roomID, counter: counter)
}

extension RoomLog {
    mutating func sequence(id: MessageID, from: String, text: String, time: Int64, late: Bool = false) -> ChatRecord? {
        sequence(signedChat(id: id, name: from, text: text), key: publicKey(of: id.node), time: time, late: late)
    }
}

extension HostRoom {
    init(host: NodeID, name: String, endpoints: [String], epoch: Int = 1,
         limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings()) {
        self.init(identity: LevChatCoreTests.identity(of: host), name: name, endpoints: endpoints, grant: testGrant, epoch: epoch,
                  limits: limits, timings: timings)
    }

    init(promoting me: Member, log: RoomLog, previous: RosterSnapshot, epoch: Int, nextSenderSeq: Int,
         outbox: [Chat], window: Duration, now: Moment, limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings()) {
        self.init(promoting: me, identity: LevChatCoreTests.identity(of: me.node), grant: testGrant, log: log, previous: previous, epoch: epoch,
                  nextSenderSeq: nextSenderSeq, outbox: outbox, window: window, now: now, limits: limits, timings: timings)
    }
}

extension MemberSession {
    init(me: NodeID, name: String, now: Moment, limits: RoomLimits = RoomLimits(), timings: RoomTimings = RoomTimings()) {
        self.init(identity: LevChatCoreTests.identity(of: me), name: name, now: now, limits: limits, timings: timings)
    }

    /// Connects to `testGrant`'s room.
    mutating func connect(listenPort: Int, endpoints: [String], now: Moment) -> WireMessage {
        connect(room: testGrant.roomID, binding: [], listenPort: listenPort, endpoints: endpoints, now: now)
    }
}

extension Rename {
    /// `node`'s rename to `name`, its claim at `counter`.
    init(node: NodeID, name: String, counter: Int = 2) {
        self.init(name: name, claim: nameClaim(node, name.trimmingWhitespace(), counter: counter))
    }
}

extension Welcome {
    init(you: Member, roster: RosterSnapshot, historyCount: Int, resumeFrom: Int? = nil) {
        self.init(you: you, roster: roster, historyCount: historyCount, resumeFrom: resumeFrom, grant: testGrant)
    }
}

extension Join {
    init(node: NodeID, name: String, listenPort: Int, endpoints: [String], lastSeq: Int) {
        self.init(node: node, name: name, listenPort: listenPort, endpoints: endpoints, lastSeq: lastSeq, key: publicKey(of: node),
                  claim: nameClaim(node, name.trimmingWhitespace()), proof: linkProof(node))
    }
}

extension Resume {
    init(node: NodeID, name: String, ordinal: Int, listenPort: Int, endpoints: [String], lastSeq: Int, tail: [LogMark]) {
        self.init(node: node, name: name, ordinal: ordinal, listenPort: listenPort, endpoints: endpoints, lastSeq: lastSeq,
                  tail: tail, key: publicKey(of: node), claim: nameClaim(node, name), proof: linkProof(node))
    }
}
