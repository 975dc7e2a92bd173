import Crypto

/// A peer's identity for one run: an Ed25519 key pair made at start. Its node id is the first 16
/// bytes of SHA-256(public key), so anyone holding the public key can check the id, and a message
/// signed with the key speaks for that node and no other (Docs/PROTOCOL.md, "Signed chat").
public struct PeerIdentity: Sendable {
    private let signingKey: Curve25519.Signing.PrivateKey
    public let node: NodeID
    public let publicKey: [UInt8]

    public init() {
        self.init(signingKey: Curve25519.Signing.PrivateKey())
    }

    /// A fixed key, for tests.
    public init(seed: [UInt8]) throws {
        self.init(signingKey: try Curve25519.Signing.PrivateKey(rawRepresentation: seed))
    }

    private init(signingKey: Curve25519.Signing.PrivateKey) {
        self.signingKey = signingKey
        publicKey = Array(signingKey.publicKey.rawRepresentation)
        node = PeerIdentity.node(for: publicKey)!
    }

    /// The node id a public key stands for; nil for a key of the wrong length.
    public static func node(for publicKey: [UInt8]) -> NodeID? {
        guard publicKey.count == 32 else { return nil }
        return NodeID(hex: SHA256.hash(data: publicKey).prefix(16).hexString)
    }

    /// The node whose key (base64) made `signature` (base64) over `message`; nil for a key or a
    /// signature that does not decode, or a signature that does not verify. Every signature this
    /// protocol checks (chats, name claims, link and fetch proofs) is checked here.
    static func signer(of message: [UInt8], key: String, signature: String) -> NodeID? {
        guard let raw = Base64.decode(key), let node = node(for: raw),
              let sig = Base64.decode(signature), sig.count == 64,
              let verifier = try? Curve25519.Signing.PublicKey(rawRepresentation: raw),
              verifier.isValidSignature(sig, for: message) else { return nil }
        return node
    }

    public func sign(_ message: [UInt8]) -> [UInt8] {
        // Signing with a valid key cannot fail.
        Array(try! signingKey.signature(for: message))
    }

    /// Signs a chat line of this peer's, said under `name` (see `ChatSignature`).
    public func signChat(room: RoomID, id: MessageID, kind: ChatKind, name: String, text: String) -> String {
        Base64.encode(sign(ChatSignature.signedBytes(room: room, id: id, kind: kind, name: name, text: text)))
    }

    /// This peer's claim to be called `name` in `room` (see `NameClaim`).
    public func claimName(_ name: String, room: RoomID, counter: Int) -> NameClaim {
        NameClaim(counter: counter, sig: Base64.encode(sign(NameClaim.signedBytes(room: room, node: node, counter: counter, name: name))))
    }
}

/// A member's own word that it is called a name in a room: its key signs the room id, its node id,
/// a counter that rises with every new name it takes, and the name. Every member checks the claim
/// of every roster entry before it shows that name for that node, so neither the host nor another
/// member can give a node a name its key did not say (Docs/PROTOCOL.md, "Names").
///
/// `"levchat/3/name" ‖ room id (8) ‖ node id (16) ‖ counter (8, big endian) ‖ name (UTF-8)`
public struct NameClaim: Codable, Hashable, Sendable {
    public var counter: Int
    /// The Ed25519 signature, base64.
    public var sig: String
    public init(counter: Int, sig: String) { self.counter = counter; self.sig = sig }

    static let context = Array("levchat/3/name".utf8)

    public static func signedBytes(room: RoomID, node: NodeID, counter: Int, name: String) -> [UInt8] {
        context + room.bytes + node.bytes + BigEndian.bytes(UInt64(clamping: counter)) + Array(name.utf8)
    }

    /// Whether this claim is `key`'s (base64) for `name`, and that key is `node`'s.
    public func verify(room: RoomID, node: NodeID, name: String, key: String) -> Bool {
        counter >= 0
            && PeerIdentity.signer(of: NameClaim.signedBytes(room: room, node: node, counter: counter, name: name), key: key, signature: sig) == node
    }
}

extension Member {
    /// Whether this entry's name is a valid name and its key's own claim in `room`.
    public func hasValidClaim(room: RoomID) -> Bool {
        guard let claim, let key, NameRule.isValid(name) else { return false }
        return claim.verify(room: room, node: node, name: name, key: key)
    }
}

/// What a chat signature covers: the room, the sender's node id and own counter, the kind, the
/// name the sender says it under, and the text. The host's sequence number and time stay outside
/// it (the host adds them); the name does not, so nobody can move a line under another name.
///
/// `"levchat/3/chat" ‖ room id (8) ‖ node id (16) ‖ sender seq (8, big endian) ‖ kind (1)
///  ‖ name length (1) ‖ name (UTF-8) ‖ text (UTF-8)`
public enum ChatSignature {
    static let context = Array("levchat/3/chat".utf8)

    public static func signedBytes(room: RoomID, id: MessageID, kind: ChatKind, name: String, text: String) -> [UInt8] {
        var bytes = context
        bytes.reserveCapacity(context.count + 34 + name.utf8.count + text.utf8.count)
        bytes += room.bytes
        bytes += id.node.bytes
        bytes += BigEndian.bytes(UInt64(clamping: id.seq))
        bytes.append(kind.rawValue)
        bytes.append(UInt8(clamping: name.utf8.count))
        bytes += Array(name.utf8.prefix(255))
        bytes += Array(text.utf8)
        return bytes
    }

    /// Whether `signature` (base64) is the holder of `publicKey` (base64) signing this chat, and
    /// that key is the sender node's.
    public static func verify(room: RoomID, id: MessageID, kind: ChatKind, name: String, text: String,
                              publicKey: String, signature: String) -> Bool {
        name.utf8.count <= 255
            && PeerIdentity.signer(of: signedBytes(room: room, id: id, kind: kind, name: name, text: text), key: publicKey, signature: signature) == id.node
    }

    /// The record's `from` is the name its sender signed.
    public static func verify(_ record: ChatRecord, room: RoomID) -> Bool {
        verify(room: room, id: record.id, kind: record.chatKind, name: record.from, text: record.text,
               publicKey: record.key, signature: record.sig)
    }
}

/// A member's word that this link is its own: its key signs the room, the link's channel binding
/// (`SessionCiphers.binding`) and its node id, in its `join` or `resume`. The host admits nobody
/// without it, so a member that replays another's key and name claim (both in every roster)
/// cannot take its place, and every line on the link is that key's own: the host need not
/// verify each line's signature (members still do, end to end; Docs/PROTOCOL.md, "Link proofs").
///
/// `"levchat/4/link" ‖ room id (8) ‖ binding (32) ‖ node id (16)`
public enum LinkProof {
    static let context = Array("levchat/4/link".utf8)

    static func signedBytes(room: RoomID, binding: [UInt8], node: NodeID) -> [UInt8] {
        context + room.bytes + binding + node.bytes
    }

    /// Whether `proof` (base64) is `key`'s (base64) signature for `node` on the link with `binding`,
    /// and `key` is `node`'s.
    public static func verify(_ proof: String?, key: String, node: NodeID, room: RoomID, binding: [UInt8]) -> Bool {
        guard let proof else { return false }
        return PeerIdentity.signer(of: signedBytes(room: room, binding: binding, node: node), key: key, signature: proof) == node
    }
}

extension PeerIdentity {
    /// This peer's `LinkProof` for the link with `binding`, base64.
    public func proveLink(room: RoomID, binding: [UInt8]) -> String {
        Base64.encode(sign(LinkProof.signedBytes(room: room, binding: binding, node: node)))
    }
}

/// A fetcher's word that it is the one asking for a file on this link: its key signs the room, the
/// file's token and the link's channel binding (`SessionCiphers.binding`, unique to one handshake
/// and known only to its two ends), so a proof seen on one link is worth nothing on another
/// (Docs/PROTOCOL.md, "Files").
///
/// `"levchat/4/fetch" ‖ room id (8) ‖ binding (32) ‖ file token (UTF-8)`
public enum FetchProof {
    static let context = Array("levchat/4/fetch".utf8)

    static func signedBytes(room: RoomID, binding: [UInt8], file: String) -> [UInt8] {
        context + room.bytes + binding + Array(file.utf8)
    }

    /// The node whose key made `fetch`'s proof on the link with `binding`; nil without a valid one.
    public static func prover(of fetch: Fetch, room: RoomID, binding: [UInt8]) -> NodeID? {
        guard let key = fetch.key, let sig = fetch.sig else { return nil }
        return PeerIdentity.signer(of: signedBytes(room: room, binding: binding, file: fetch.file), key: key, signature: sig)
    }
}

extension PeerIdentity {
    /// A `fetch` of `file` from `offset`, with this peer's proof for the link with `binding`
    /// (and the faster cipher it takes for the bytes, if any).
    public func fetch(_ file: String, offset: Int, room: RoomID, binding: [UInt8], cipher: LinkCipher? = nil) -> Fetch {
        Fetch(file: file, offset: offset, key: Base64.encode(publicKey),
              sig: Base64.encode(sign(FetchProof.signedBytes(room: room, binding: binding, file: file))), cipher: cipher)
    }
}

/// What a chat line is: said, or done (`/me`).
public enum ChatKind: UInt8, Sendable, Codable {
    case text = 0
    case action = 1
    /// A file offered to the room: the text is a `FileOffer`, signed like any line.
    case offer = 2
}
