#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Protocol versions this build speaks. `hello` carries the range; the host picks the highest
/// version both sides have.
public enum ProtocolVersion {
    /// 4: files (`offer` records, `fetch`, `file`, `data`; Docs/PROTOCOL.md, "Files").
    /// 5: link proofs in `join` and `resume` (required), fetch proofs and offers to one member,
    /// AES-256-GCM data records, `done` (Docs/PROTOCOL.md, first paragraph).
    public static let minimum = 5
    public static let maximum = 5
    public static var range: VersionRange { VersionRange(min: minimum, max: maximum) }
}

public struct VersionRange: Codable, Hashable, Sendable {
    public var min: Int
    public var max: Int
    public init(min: Int, max: Int) { self.min = min; self.max = max }

    /// The highest version in both ranges, if any.
    public func negotiate(with other: VersionRange) -> Int? {
        let high = Swift.min(max, other.max)
        return high >= Swift.max(min, other.min) ? high : nil
    }
}

/// A peer's identity for one run: the first 16 bytes of SHA-256 of its Ed25519 public key
/// (`PeerIdentity`), shown as 32 hex digits.
public struct NodeID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let hex: String

    public init?(hex: String) {
        guard hex.utf8.count == 32, hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) })
        else { return nil }
        self.hex = hex
    }

    /// 32 lower-case hex digits made here from 16 bytes (`hexString`), so valid by construction.
    init(trustedHex hex: String) { self.hex = hex }

    public static func random() -> NodeID {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return NodeID(hex: bytes.hexString)!
    }

    public var description: String { String(hex.prefix(8)) }
    /// The 16 bytes.
    public var bytes: [UInt8] { HexBytes.decode(hex)! }
    public static func < (a: NodeID, b: NodeID) -> Bool { a.hex < b.hex }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = NodeID(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad node id"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// A message's identity, stable across resends to any host: (sender node, sender's own counter).
public struct MessageID: Hashable, Codable, Sendable {
    public var node: NodeID
    public var seq: Int
    public init(node: NodeID, seq: Int) { self.node = node; self.seq = seq }
}

public struct Member: Codable, Hashable, Sendable {
    public var node: NodeID
    public var name: String
    /// Given by the host, 1, 2, 3, … never reused in a room; decides succession.
    public var ordinal: Int
    /// Where this member listens, as `host:port` strings (IPv6 in brackets).
    public var endpoints: [String]
    /// The member's Ed25519 public key, base64; its node id is derived from it.
    public var key: String?
    /// The member's own signed claim to `name` (`NameClaim`): members show no name without it.
    public var claim: NameClaim?

    public init(node: NodeID, name: String, ordinal: Int, endpoints: [String], key: String? = nil, claim: NameClaim? = nil) {
        self.node = node
        self.name = name
        self.ordinal = ordinal
        self.endpoints = endpoints
        self.key = key
        self.claim = claim
    }
}

/// One sequenced chat message as every member stores and shows it.
public struct ChatRecord: Codable, Hashable, Sendable {
    public var seq: Int
    public var id: MessageID
    /// The name the sender said the line under, covered by its signature.
    public var from: String
    public var text: String
    /// Milliseconds since 1970, stamped by the host that sequenced it.
    public var time: Int64
    /// Set when the record was first sequenced elsewhere (by a host whose side of a split, or whose
    /// crash, the room's host did not see) and appended here afterwards: shown as late, not lost.
    public var late: Bool?
    /// Said or done (`/me`); absent means said.
    public var kind: ChatKind?
    /// The sender's public key (base64), which its node id is derived from, and its signature
    /// over the chat (`ChatSignature`), both copied unchanged from the sender's `chat`.
    public var key: String
    public var sig: String

    public init(seq: Int, id: MessageID, from: String, text: String, time: Int64, late: Bool? = nil,
                kind: ChatKind? = nil, key: String, sig: String) {
        self.seq = seq
        self.id = id
        self.from = from
        self.text = text
        self.time = time
        self.late = late
        self.kind = kind
        self.key = key
        self.sig = sig
    }

    public var chatKind: ChatKind { kind ?? .text }
}

// MARK: Handshake messages (plain JSON)

public struct Hello: Codable, Hashable, Sendable {
    public var versions: VersionRange
    public var role: String
    /// Absent in protocol 1 (which the version check refuses first).
    public var auth: HandshakeAuth?
    /// With `auth: secret`: the joiner's ephemeral X25519 public key (32 bytes, base64). It is the
    /// hello's nonce and half of the link's Diffie-Hellman (Docs/PROTOCOL.md, "Member handshake").
    public var nonce: String?
    /// With `auth: secret`: the generation of the room secret the member holds.
    public var gen: Int?
    public init(versions: VersionRange, role: String, auth: HandshakeAuth?, nonce: String?, gen: Int? = nil) {
        self.versions = versions; self.role = role; self.auth = auth; self.nonce = nonce; self.gen = gen
    }
}

public struct Challenge: Codable, Hashable, Sendable {
    public var version: Int
    /// The room id, 16 hex digits.
    public var rid: String
    public var auth: HandshakeAuth
    /// With `auth: code`: CPace's session id (16 bytes) and the host's share Ya (32 bytes), base64.
    public var sid: String?
    public var ya: String?
    /// With `auth: secret`: the host's ephemeral X25519 public key (32 bytes, base64).
    public var nonce: String?
    /// With `auth: secret`: the generation of the room secret the host holds. Both sides prove
    /// the secret of the later of the two generations (the one behind ratchets forward).
    public var gen: Int?
    /// With `auth: secret`: 16 bytes of HMAC under that generation's secret over the joiner's
    /// share (base64). A joiner whose secret is out of date (it missed a fresh secret) sees the
    /// mismatch and comes back with the code, never sending a proof that would count as a guess.
    public var tag: String?
    public init(version: Int, rid: String, auth: HandshakeAuth, sid: String?, ya: String?, nonce: String?, gen: Int? = nil,
                tag: String? = nil) {
        self.version = version; self.rid = rid; self.auth = auth; self.sid = sid; self.ya = ya; self.nonce = nonce; self.gen = gen
        self.tag = tag
    }
}

/// `auth` (the joiner's key confirmation, with its CPace share Yb under `auth: code`) and
/// `auth_ok` (the host's).
public struct Proof: Codable, Hashable, Sendable {
    public var proof: String
    public var yb: String?
    public init(proof: String, yb: String?) { self.proof = proof; self.yb = yb }
}

public struct ErrorInfo: Codable, Hashable, Sendable {
    public var code: String
    /// What the refusing peer said: its own words, shown only escaped.
    public var message: UntrustedText
    public init(code: ErrorCode, message: String) { self.code = code.rawValue; self.message = UntrustedText(message) }
}

public enum ErrorCode: String, Sendable {
    case version, auth, nameTaken = "name_taken", roomFull = "room_full", protocolError = "protocol"
    case tooLong = "too_long"
    /// Too many failed proofs from this address; refused for a while.
    case limited
    /// A `fetch` for a file this peer does not offer (any more), or cannot read now.
    case noFile = "no_file"
    /// A `fetch` while this peer serves as many as it will at once.
    case busy
    /// The sender's user stopped this transfer (`/cancel`); a later `fetch` may resume it.
    case cancelled
    /// This member's key joined again on another link, which took its place: the run on this
    /// link leaves rather than take the place back (two runs of one identity would push each
    /// other out for ever).
    case replaced
}

// MARK: Session messages (inside encrypted records)

public struct Join: Codable, Hashable, Sendable {
    public var node: NodeID
    public var name: String
    /// The port this peer's own listener has; the host pairs it with the address it sees.
    public var listenPort: Int
    public var endpoints: [String]
    public var lastSeq: Int
    /// The joiner's Ed25519 public key, base64; `node` must be derived from it.
    public var key: String
    /// The joiner's signed claim to `name`.
    public var claim: NameClaim
    /// `LinkProof`: the key signs this link. Required; optional here so that a join without one
    /// decodes and is refused with a sentence.
    public var proof: String?
    public init(node: NodeID, name: String, listenPort: Int, endpoints: [String], lastSeq: Int, key: String, claim: NameClaim,
                proof: String? = nil) {
        self.node = node; self.name = name; self.listenPort = listenPort
        self.endpoints = endpoints; self.lastSeq = lastSeq; self.key = key; self.claim = claim; self.proof = proof
    }
}

public struct RosterSnapshot: Codable, Hashable, Sendable {
    public var epoch: Int
    public var host: NodeID
    public var members: [Member]
    public init(epoch: Int, host: NodeID, members: [Member]) {
        self.epoch = epoch; self.host = host; self.members = members
    }

    /// The roster after a presence: its own roster when it carries one (a host change), else
    /// this one with the member added, removed or renamed, in join order.
    public func applying(_ presence: Presence) -> RosterSnapshot {
        if let whole = presence.roster { return whole }
        var next = self
        switch presence.event {
        case .joined:
            next.members.removeAll { $0.node == presence.member.node }
            next.members.append(presence.member)
            next.members.sort { $0.ordinal < $1.ordinal }
        case .left:
            next.members.removeAll { $0.node == presence.member.node }
        case .renamed:
            if let index = next.members.firstIndex(where: { $0.node == presence.member.node }) { next.members[index] = presence.member }
        case .host:
            break
        }
        return next
    }
}

public struct Welcome: Codable, Hashable, Sendable {
    public var you: Member
    public var roster: RosterSnapshot
    /// How many `history` records came before this welcome.
    public var historyCount: Int
    /// Answering a `resume`: the `history` records before this welcome are the host's log from
    /// this room sequence on, and the member's own log from here on is replaced by them.
    public var resumeFrom: Int?
    /// The room id (hex) and the room secret (base64): every member keeps them, to prove itself to
    /// the next host (Docs/PROTOCOL.md, "Member handshake").
    public var rid: String
    public var secret: String
    /// The secret's generation (`RoomGrant`).
    public var gen: Int
    public init(you: Member, roster: RosterSnapshot, historyCount: Int, resumeFrom: Int? = nil, grant: RoomGrant) {
        self.you = you; self.roster = roster; self.historyCount = historyCount; self.resumeFrom = resumeFrom
        rid = grant.roomID.hex
        secret = Base64.encode(grant.secret)
        gen = grant.generation
    }

    public var grant: RoomGrant? {
        guard let room = RoomID(hex: rid), let bytes = Base64.decode(secret) else { return nil }
        return RoomGrant(roomID: room, secret: bytes, generation: gen)
    }
}

/// A log position as a member reports it on `resume`: which message it holds at which sequence.
public struct LogMark: Codable, Hashable, Sendable {
    public var seq: Int
    public var id: MessageID
    public init(seq: Int, id: MessageID) { self.seq = seq; self.id = id }
}

/// A member of the room reconnecting to a new host after a host change (instead of `join`): it
/// keeps its ordinal, and its log's tail lets the host find where the two logs part.
public struct Resume: Codable, Hashable, Sendable {
    public var node: NodeID
    public var name: String
    public var ordinal: Int
    public var listenPort: Int
    public var endpoints: [String]
    public var lastSeq: Int
    /// The member's newest records, oldest first (at most `Resume.maximumTail`).
    public var tail: [LogMark]
    public var key: String
    public var claim: NameClaim
    /// The generation of the room secret the member holds: a host behind it moves forward.
    public var gen: Int = 0
    /// `LinkProof`, as in `join`.
    public var proof: String?
    public static let maximumTail = 256
    public init(node: NodeID, name: String, ordinal: Int, listenPort: Int, endpoints: [String], lastSeq: Int, tail: [LogMark], key: String,
                claim: NameClaim, proof: String? = nil) {
        self.node = node; self.name = name; self.ordinal = ordinal; self.listenPort = listenPort
        self.endpoints = endpoints; self.lastSeq = lastSeq; self.tail = tail; self.key = key; self.claim = claim; self.proof = proof
    }
}

/// Host to members: "I am leaving; the room goes on at this host with this epoch".
public struct Handover: Codable, Hashable, Sendable {
    public var epoch: Int
    public var host: Member
    public init(epoch: Int, host: Member) { self.epoch = epoch; self.host = host }
}

/// Host to members: "the room secret is at this generation now" (Docs/PROTOCOL.md, "The ratchet").
/// After a join, a broadcast sealed with the key of the generation before, without `secret`: every
/// member ratchets its secret forward. After a departure, one message per member on its own link
/// with a fresh random `secret` (32 bytes, base64) that the one who left cannot compute. Either
/// way the member forgets the old secret and opens what follows with the new generation's key.
public struct Rekey: Codable, Hashable, Sendable {
    public var gen: Int
    public var secret: String?
    public init(gen: Int, secret: [UInt8]? = nil) {
        self.gen = gen
        self.secret = secret.map(Base64.encode)
    }
}

/// Member to host after `resume`: sequenced records the member holds and the host does not.
public struct Push: Codable, Hashable, Sendable {
    public var records: [ChatRecord]
    public init(records: [ChatRecord]) { self.records = records }

    /// Each record's signature checked, for the records a host takes (`HostRoom.received`'s
    /// `pushVerdicts`): the ~0.1 ms each that the room's event loop must not spend.
    public func verdicts(room: RoomID) -> [Bool] {
        records.prefix(Resume.maximumTail).map { ChatSignature.verify($0, room: room) }
    }
}

/// "Who is the host?" A peer answers with `redirect` and closes.
public struct Probe: Codable, Hashable, Sendable {
    public var node: NodeID
    public init(node: NodeID) { self.node = node }
}

/// The first message on a link opened to fetch an offered file (Docs/PROTOCOL.md, "Files"):
/// which file (the offer's `file` token) and from which byte (a resumed `.part`).
///
/// `key` and `sig` say who asks: the fetcher's Ed25519 public key and its `FetchProof` over this
/// link. An offer to one member (`FileOffer.to`) is served only with a proof by that member's key.
public struct Fetch: Codable, Hashable, Sendable {
    public var file: String
    public var offset: Int
    /// The fetcher's public key, base64.
    public var key: String?
    /// `FetchProof`, base64.
    public var sig: String?
    /// A faster cipher this fetcher takes for the data (`LinkCipher`; only `aes-256-gcm` now),
    /// when it has AES in hardware. Absent: ChaCha20-Poly1305 throughout.
    public var cipher: String?
    public init(file: String, offset: Int, key: String? = nil, sig: String? = nil, cipher: LinkCipher? = nil) {
        self.file = file
        self.offset = offset
        self.key = key
        self.sig = sig
        self.cipher = cipher?.rawValue
    }
}

/// The sender's answer to a `fetch`: the bytes from `offset` to `size` follow as `data` records,
/// and then the link closes.
///
/// `cipher`: the sender seals the records after this one with that cipher (one the fetch
/// offered); absent, with ChaCha20-Poly1305 as before.
public struct FileStart: Codable, Hashable, Sendable {
    public var size: Int
    public var offset: Int
    public var cipher: String?
    public init(size: Int, offset: Int, cipher: LinkCipher? = nil) {
        self.size = size
        self.offset = offset
        self.cipher = cipher?.rawValue
    }
}

/// The fetcher's last word on a file link: every byte is here and this is their SHA-256. The
/// sender says `sent` only on this, and only when it is the offer's hash (a link that just ends,
/// or a fetcher killed with bytes still in its socket, is not a file delivered).
public struct FileDone: Codable, Hashable, Sendable {
    public var sha256: String
    public init(sha256: String) { self.sha256 = sha256 }
}

public struct HistoryChunk: Codable, Hashable, Sendable {
    public var records: [ChatRecord]
    public init(records: [ChatRecord]) { self.records = records }
}

public enum PresenceEvent: String, Codable, Sendable {
    case joined, left
    /// `member` is the new host; `previous` the one it replaced.
    case host
    /// `member` under its new name (`/nick`); `previous` under its old one.
    case renamed
}

/// A change of membership. Members keep the same roster as the host by applying each change to the
/// one of their welcome (so every member can compute the same successor); a host change carries
/// the whole roster. Deltas keep a join in a room of 500 from sending 500 rosters of 500.
public struct Presence: Codable, Hashable, Sendable {
    public var event: PresenceEvent
    public var member: Member
    /// Why a member left: "quit" (said bye) or "lost" (connection died or went silent).
    public var reason: String?
    public var time: Int64
    /// The whole roster after the change: on `.host` only.
    public var roster: RosterSnapshot?
    /// For `.host`: the host before.
    public var previous: Member?
    public init(event: PresenceEvent, member: Member, reason: String?, time: Int64, roster: RosterSnapshot? = nil, previous: Member? = nil) {
        self.event = event; self.member = member; self.reason = reason; self.time = time; self.roster = roster
        self.previous = previous
    }
}

public struct Chat: Codable, Hashable, Sendable {
    public var id: MessageID
    /// The sender's name as it signs the line.
    public var name: String
    public var text: String
    public var kind: ChatKind?
    /// The sender's signature (`ChatSignature`), base64.
    public var sig: String
    public init(id: MessageID, name: String, text: String, kind: ChatKind? = nil, sig: String) {
        self.id = id; self.name = name; self.text = text; self.kind = kind; self.sig = sig
    }

    /// A chat line signed by `identity`, said under `name`.
    public init(signedBy identity: PeerIdentity, room: RoomID, seq: Int, name: String, text: String, kind: ChatKind = .text) {
        let id = MessageID(node: identity.node, seq: seq)
        self.init(id: id, name: name, text: text, kind: kind == .text ? nil : kind,
                  sig: identity.signChat(room: room, id: id, kind: kind, name: name, text: text))
    }

    public var chatKind: ChatKind { kind ?? .text }

    /// Whether the signature is the sender's (whose public key the host knows from its join).
    public func isSigned(room: RoomID, key: String) -> Bool {
        ChatSignature.verify(room: room, id: id, kind: chatKind, name: name, text: text, publicKey: key, signature: sig)
    }
}

/// Member to host: "call me this from now on" (`/nick`). The host checks the name like a
/// joiner's and announces it with a `renamed` presence.
public struct Rename: Codable, Hashable, Sendable {
    public var name: String
    /// The member's signed claim to the new name, with a counter above its last one.
    public var claim: NameClaim
    public init(name: String, claim: NameClaim) { self.name = name; self.claim = claim }
}

public struct Ping: Codable, Hashable, Sendable {
    public var lastSeq: Int
    public init(lastSeq: Int) { self.lastSeq = lastSeq }
}

public struct Bye: Codable, Hashable, Sendable {
    /// "quit" from a member; "room_closed" from a host that leaves with no successor.
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// The answer of a peer that is not (or not only) the place to be: where the host is.
public struct Redirect: Codable, Hashable, Sendable {
    public enum Role: String, Codable, Sendable {
        /// The answering peer is the host (`endpoints` are its own).
        case host
        /// A member with a live link to the host at `endpoints`.
        case member
        /// A member that lost its host and is finding the next one (`endpoints` empty).
        case electing
    }
    public var endpoints: [String]
    public var role: Role?
    /// The answering peer's epoch (for a host, its claim) and its own node and ordinal.
    public var epoch: Int?
    public var node: NodeID?
    public var ordinal: Int?
    public init(endpoints: [String], role: Role? = nil, epoch: Int? = nil, node: NodeID? = nil, ordinal: Int? = nil) {
        self.endpoints = endpoints; self.role = role; self.epoch = epoch; self.node = node; self.ordinal = ordinal
    }
}

/// Which of two hosts of one room keeps it when they meet (partition heal): the higher epoch, then
/// the lower ordinal (the more senior member), then the lower node id. Nobody follows a lower claim.
public struct HostClaim: Hashable, Sendable {
    public var epoch: Int
    public var ordinal: Int
    public var node: NodeID
    public init(epoch: Int, ordinal: Int, node: NodeID) { self.epoch = epoch; self.ordinal = ordinal; self.node = node }

    public func beats(_ other: HostClaim) -> Bool {
        if epoch != other.epoch { return epoch > other.epoch }
        if ordinal != other.ordinal { return ordinal < other.ordinal }
        return node < other.node
    }
}

/// Every message of the protocol. Decoding never fails on an unknown `type` or unknown fields:
/// those come back as `.unknown` so newer peers can add messages.
public enum WireMessage: Hashable, Sendable {
    case hello(Hello)
    case challenge(Challenge)
    case auth(Proof)
    case authOK(Proof)
    case error(ErrorInfo)
    case join(Join)
    case welcome(Welcome)
    case history(HistoryChunk)
    case presence(Presence)
    case chat(Chat)
    case msg(ChatRecord)
    case ping(Ping)
    case bye(Bye)
    case redirect(Redirect)
    case resume(Resume)
    case handover(Handover)
    case push(Push)
    case probe(Probe)
    case nick(Rename)
    case rekey(Rekey)
    case fetch(Fetch)
    case file(FileStart)
    case done(FileDone)
    /// Bytes of a fetched file (binary: `4 ‖ bytes`).
    case data([UInt8])
    case unknown(String)

    /// The first byte of a `data` message (the rest is the file's bytes).
    public static let dataType = BinaryMessages.dataType

    public var typeName: String {
        switch self {
        case .hello: "hello"
        case .challenge: "challenge"
        case .auth: "auth"
        case .authOK: "auth_ok"
        case .error: "error"
        case .join: "join"
        case .welcome: "welcome"
        case .history: "history"
        case .presence: "presence"
        case .chat: "chat"
        case .msg: "msg"
        case .ping: "ping"
        case .bye: "bye"
        case .redirect: "redirect"
        case .resume: "resume"
        case .handover: "handover"
        case .push: "push"
        case .probe: "probe"
        case .nick: "nick"
        case .rekey: "rekey"
        case .fetch: "fetch"
        case .file: "file"
        case .done: "done"
        case .data: "data"
        case .unknown(let name): name
        }
    }

    private struct TypeKey: Codable { var type: String }
    private enum Keys: String, CodingKey { case type, bytes }

    /// `chat`, `msg` and `ping` in their binary form (`BinaryMessages`), the rest as JSON.
    public func encoded() -> [UInt8] {
        if case .chat(let chat) = self, let bytes = BinaryMessages.encode(chat) { return bytes }
        if case .msg(let record) = self, let bytes = BinaryMessages.encode(record) { return bytes }
        if case .ping(let ping) = self { return BinaryMessages.encode(ping) }
        if case .data(let bytes) = self { return [BinaryMessages.dataType] + bytes }
        return jsonEncoded()
    }

    /// The JSON form (handshake payloads, rare messages; any message for tests).
    public func jsonEncoded() -> [UInt8] {
        // Encoding our own value types cannot fail.
        try! Array(WireMessage.encoder.encode(Tagged(message: self)))
    }

    /// Decodes and range-checks a message (`WireRanges`).
    public static func decode(_ bytes: [UInt8]) throws(MessageError) -> WireMessage {
        try bytes.withUnsafeBytes { buffer in Result { () throws(MessageError) in try decode(buffer, json: { Data(bytes) }) } }.get()
    }

    /// The same, from an opened record's bytes as they came (no copy into an array first).
    public static func decode(_ data: Data) throws(MessageError) -> WireMessage {
        try data.withUnsafeBytes { buffer in Result { () throws(MessageError) in try decode(buffer, json: { data }) } }.get()
    }

    /// `json` gives the same bytes as `Data`, for the JSON decoder (made only for a JSON message).
    private static func decode(_ bytes: UnsafeRawBufferPointer, json: () -> Data) throws(MessageError) -> WireMessage {
        let message = try decodeUnchecked(bytes, json: json)
        try WireRanges.check(message)
        return message
    }

    private static func decodeUnchecked(_ bytes: UnsafeRawBufferPointer, json: () -> Data) throws(MessageError) -> WireMessage {
        guard let first = bytes.first else { throw .malformed("empty message") }
        if BinaryMessages.isBinary(first) { return try BinaryMessages.decode(bytes) }
        let data = json()
        let decoder = JSONDecoder()
        let type: String
        do {
            type = try decoder.decode(TypeKey.self, from: data).type
        } catch {
            throw .malformed("not a JSON object with a type")
        }
        do {
            switch type {
            case "hello": return .hello(try decoder.decode(Hello.self, from: data))
            case "challenge": return .challenge(try decoder.decode(Challenge.self, from: data))
            case "auth": return .auth(try decoder.decode(Proof.self, from: data))
            case "auth_ok": return .authOK(try decoder.decode(Proof.self, from: data))
            case "error": return .error(try decoder.decode(ErrorInfo.self, from: data))
            case "join": return .join(try decoder.decode(Join.self, from: data))
            case "welcome": return .welcome(try decoder.decode(Welcome.self, from: data))
            case "history": return .history(try decoder.decode(HistoryChunk.self, from: data))
            case "presence": return .presence(try decoder.decode(Presence.self, from: data))
            case "chat": return .chat(try decoder.decode(Chat.self, from: data))
            case "msg": return .msg(try decoder.decode(ChatRecord.self, from: data))
            case "ping": return .ping(try decoder.decode(Ping.self, from: data))
            case "bye": return .bye(try decoder.decode(Bye.self, from: data))
            case "redirect": return .redirect(try decoder.decode(Redirect.self, from: data))
            case "resume": return .resume(try decoder.decode(Resume.self, from: data))
            case "handover": return .handover(try decoder.decode(Handover.self, from: data))
            case "push": return .push(try decoder.decode(Push.self, from: data))
            case "probe": return .probe(try decoder.decode(Probe.self, from: data))
            case "nick": return .nick(try decoder.decode(Rename.self, from: data))
            case "rekey": return .rekey(try decoder.decode(Rekey.self, from: data))
            case "fetch": return .fetch(try decoder.decode(Fetch.self, from: data))
            case "file": return .file(try decoder.decode(FileStart.self, from: data))
            case "done": return .done(try decoder.decode(FileDone.self, from: data))
            default: return .unknown(type)
            }
        } catch {
            throw .malformed("bad \(type) message")
        }
    }

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()

    /// Writes `type` and the payload's fields into one JSON object.
    private struct Tagged: Encodable {
        let message: WireMessage
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(message.typeName, forKey: .type)
            switch message {
            case .hello(let m): try m.encode(to: encoder)
            case .challenge(let m): try m.encode(to: encoder)
            case .auth(let m), .authOK(let m): try m.encode(to: encoder)
            case .error(let m): try m.encode(to: encoder)
            case .join(let m): try m.encode(to: encoder)
            case .welcome(let m): try m.encode(to: encoder)
            case .history(let m): try m.encode(to: encoder)
            case .presence(let m): try m.encode(to: encoder)
            case .chat(let m): try m.encode(to: encoder)
            case .msg(let m): try m.encode(to: encoder)
            case .ping(let m): try m.encode(to: encoder)
            case .bye(let m): try m.encode(to: encoder)
            case .redirect(let m): try m.encode(to: encoder)
            case .resume(let m): try m.encode(to: encoder)
            case .handover(let m): try m.encode(to: encoder)
            case .push(let m): try m.encode(to: encoder)
            case .probe(let m): try m.encode(to: encoder)
            case .nick(let m): try m.encode(to: encoder)
            case .rekey(let m): try m.encode(to: encoder)
            case .fetch(let m): try m.encode(to: encoder)
            case .file(let m): try m.encode(to: encoder)
            case .done(let m): try m.encode(to: encoder)
            // Only binary on the wire (`encoded`). Its JSON form, for logs and tests, carries the
            // bytes as base64 under their own key: encoding the array into the object's own encoder
            // traps in JSONEncoder (an unkeyed container where a keyed one is), which FuzzMessages
            // found. It reads back as an unknown type.
            case .data(let bytes): try container.encode(Base64.encode(bytes), forKey: .bytes)
            case .unknown: break
            }
        }
    }
}

public enum MessageError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    public var description: String {
        switch self { case .malformed(let why): "malformed message: \(why)" }
    }
}

/// Standard base64 with padding (RFC 4648 §4), strict on decoding: every key and signature
/// crosses it on the relay path, so it is plain loops over bytes rather than Foundation's `Data`.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// Written straight into the string's storage: every record a member opens carries a key and
    /// a signature to show in base64, and an array literal per three bytes made this a tenth of
    /// the bench's CPU per delivery (Docs/BENCHMARKS.md, "Text of keys and ids").
    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { encode($0) }
    }

    /// Bytes where they lie (a field of a record being decoded).
    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        let length = (bytes.count + 2) / 3 * 4
        guard length > 0 else { return "" }
        return alphabet.withUnsafeBufferPointer { alphabet in
            String(unsafeUninitializedCapacity: length) { out in
                var (i, o) = (0, 0)
                while i + 3 <= bytes.count {
                    let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                    out[o] = alphabet[Int(n >> 18)]
                    out[o + 1] = alphabet[Int(n >> 12 & 63)]
                    out[o + 2] = alphabet[Int(n >> 6 & 63)]
                    out[o + 3] = alphabet[Int(n & 63)]
                    i += 3
                    o += 4
                }
                let rest = bytes.count - i
                if rest > 0 {
                    let n = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
                    out[o] = alphabet[Int(n >> 18)]
                    out[o + 1] = alphabet[Int(n >> 12 & 63)]
                    out[o + 2] = rest == 2 ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "=")
                    out[o + 3] = UInt8(ascii: "=")
                }
                return length
            }
        }
    }

    /// Nil unless `text` is canonical padded base64. Read from the string's own UTF-8 and written
    /// into one array of the decoded length (the host decodes a key and a signature per line).
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { chars in values.withUnsafeBufferPointer { values in decode(chars, values: values) } }
    }

    private static func decode(_ chars: UnsafeBufferPointer<UInt8>, values: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard chars.count % 4 == 0 else { return nil }
        guard !chars.isEmpty else { return [] }
        let padding = chars[chars.count - 1] == UInt8(ascii: "=") ? (chars[chars.count - 2] == UInt8(ascii: "=") ? 2 : 1) : 0
        let length = chars.count / 4 * 3 - padding
        var valid = true
        let out = [UInt8](unsafeUninitializedCapacity: length) { out, written in
            var (i, o) = (0, 0)
            while i < chars.count {
                let last = i + 4 == chars.count
                let pad = last ? padding : 0
                var n: UInt32 = 0
                for j in 0..<(4 - pad) {
                    let v = values[Int(chars[i + j])]
                    guard v != 0xFF else { valid = false; written = o; return }
                    n = n << 6 | UInt32(v)
                }
                n <<= UInt32(6 * pad)
                out[o] = UInt8(n >> 16)
                if pad < 2 { out[o + 1] = UInt8(n >> 8 & 0xFF) }
                if pad < 1 { out[o + 2] = UInt8(n & 0xFF) }
                o += 3 - pad
                // Bits the padding leaves out must be zero (one encoding per value).
                if pad == 1 && n & 0xFF != 0 || pad == 2 && n & 0xFFFF != 0 { valid = false; written = o; return }
                i += 4
            }
            written = o
        }
        return valid ? out : nil
    }
}
