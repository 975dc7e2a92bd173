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

    public func sign(_ message: [UInt8]) -> [UInt8] {
        // Signing with a valid key cannot fail.
        Array(try! signingKey.signature(for: message))
    }

    /// Signs a chat line of this peer's (see `ChatSignature`).
    public func signChat(room: RoomID, id: MessageID, kind: ChatKind, text: String) -> String {
        Base64.encode(sign(ChatSignature.signedBytes(room: room, id: id, kind: kind, text: text)))
    }
}

/// What a chat signature covers: the room, the sender's node id and own counter, the kind and the
/// text. The host's sequence number and time stay outside it (the host adds them).
///
/// `"levchat/2/chat" ‖ room id (8) ‖ node id (16) ‖ sender seq (8, big endian) ‖ kind (1) ‖ text (UTF-8)`
public enum ChatSignature {
    static let context = Array("levchat/2/chat".utf8)

    public static func signedBytes(room: RoomID, id: MessageID, kind: ChatKind, text: String) -> [UInt8] {
        var bytes = context
        bytes.reserveCapacity(context.count + 33 + text.utf8.count)
        bytes += room.bytes
        bytes += id.node.bytes
        let seq = UInt64(clamping: id.seq)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: seq >> UInt64(shift))) }
        bytes.append(kind.rawValue)
        bytes += Array(text.utf8)
        return bytes
    }

    /// Whether `signature` (base64) is the holder of `publicKey` (base64) signing this chat, and
    /// that key is the sender node's.
    public static func verify(room: RoomID, id: MessageID, kind: ChatKind, text: String,
                              publicKey: String, signature: String) -> Bool {
        guard let key = Base64.decode(publicKey), PeerIdentity.node(for: key) == id.node,
              let sig = Base64.decode(signature), sig.count == 64,
              let verifier = try? Curve25519.Signing.PublicKey(rawRepresentation: key)
        else { return false }
        return verifier.isValidSignature(sig, for: signedBytes(room: room, id: id, kind: kind, text: text))
    }

    public static func verify(_ record: ChatRecord, room: RoomID) -> Bool {
        verify(room: room, id: record.id, kind: record.chatKind, text: record.text, publicKey: record.key, signature: record.sig)
    }
}

/// What a chat line is: said, or done (`/me`).
public enum ChatKind: UInt8, Sendable, Codable {
    case text = 0
    case action = 1
}
