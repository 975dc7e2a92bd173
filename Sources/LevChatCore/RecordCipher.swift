import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// After the handshake every frame is a record: one kind byte, then (Docs/PROTOCOL.md, "Records")
///
/// - kind 0, link record: `0 ‖ ciphertext ‖ tag(16)`, sealed with the link's key for its
///   direction; the nonce is implicit (4 zero bytes and a 64-bit big-endian counter each direction
///   advances per record) and the associated data is the kind byte. A replayed, reordered or
///   dropped record fails to open and the link closes.
/// - kind 1, broadcast record: `1 ‖ counter(8) ‖ ciphertext ‖ tag(16)`, sealed once for the whole
///   room with the broadcast key of (epoch, host) (`BroadcastKey`); the nonce is 4 zero bytes and
///   the explicit counter, the associated data `1 ‖ epoch(8) ‖ counter(8)`. A member accepts only
///   counters above the last it accepted.
public enum RecordKind: UInt8, Sendable {
    case link = 0
    case broadcast = 1
    /// A link record sealed with AES-256-GCM (`LinkCipher.aes256GCM`): what a file's sender
    /// writes after both ends chose it (Docs/PROTOCOL.md, "Files"). Same layout and nonce as
    /// kind 0; the associated data is this kind byte.
    case linkAESGCM = 2
}

/// The AEAD of one direction of a link. Every link starts with ChaCha20-Poly1305; a file's
/// sender may move its direction to AES-256-GCM when both ends have AES in hardware, where it is
/// several times faster (Docs/BENCHMARKS.md, "Files").
public enum LinkCipher: String, Sendable, Codable {
    case chacha20Poly1305 = "chacha20-poly1305"
    case aes256GCM = "aes-256-gcm"

    var kind: RecordKind { self == .aes256GCM ? .linkAESGCM : .link }
}

/// What seals records of one kind, each handed out in pieces, so a caller can put a record
/// straight into its frame (the host's broadcast once per line, a link's records).
public protocol RecordSealing {
    /// Bytes a record adds to its plaintext.
    var overhead: Int { get }
    mutating func seal(_ plaintext: some DataProtocol, into write: (UnsafeRawBufferPointer) -> Void) throws(RecordError)
}

public struct RecordSealer: Sendable, RecordSealing {
    private var key: SymmetricKey
    private var counter: UInt64 = 0
    public private(set) var cipher = LinkCipher.chacha20Poly1305

    public init(key: SymmetricKey) { self.key = key }

    /// Bytes a link record adds to its plaintext: the kind byte and the tag.
    public static let overhead = 1 + 16
    public var overhead: Int { Self.overhead }

    /// From the next record on, seals with `cipher` under a key of its own (`Record.key(after:for:)`),
    /// its counter from 0 again. Only from ChaCha20-Poly1305, once.
    public mutating func switchTo(_ cipher: LinkCipher) {
        guard self.cipher == .chacha20Poly1305, cipher != .chacha20Poly1305 else { return }
        key = Record.key(after: key, for: cipher)
        counter = 0
        self.cipher = cipher
    }

    public mutating func seal(_ plaintext: some DataProtocol) throws(RecordError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(plaintext.count + RecordSealer.overhead)
        try seal(plaintext) { out.append(contentsOf: $0) }
        return out
    }

    /// Hands the record's pieces (kind, ciphertext, tag) to `write` in order, so a caller can put
    /// them straight into its frame with no record array in between.
    public mutating func seal(_ plaintext: some DataProtocol, into write: (UnsafeRawBufferPointer) -> Void) throws(RecordError) {
        defer { counter += 1 }
        var kind = cipher.kind.rawValue
        try withUnsafeBytes(of: &kind) { kind throws(RecordError) in
            try Record.seal(plaintext, cipher: cipher, header: kind, key: key, counter: counter, associatedData: kind, into: write)
        }
    }
}

public struct RecordOpener: Sendable {
    private var key: SymmetricKey
    private var counter: UInt64 = 0
    public private(set) var cipher = LinkCipher.chacha20Poly1305

    public init(key: SymmetricKey) { self.key = key }

    /// The other end's `RecordSealer.switchTo`: from the next record on, only records of `cipher`.
    public mutating func switchTo(_ cipher: LinkCipher) {
        guard self.cipher == .chacha20Poly1305, cipher != .chacha20Poly1305 else { return }
        key = Record.key(after: key, for: cipher)
        counter = 0
        self.cipher = cipher
    }

    /// Opens a link record (kind byte included).
    public mutating func open(_ record: [UInt8]) throws(RecordError) -> [UInt8] {
        let plain = record.withUnsafeBytes { bytes in Result { () throws(RecordError) -> Data in try openData(bytes) } }
        return Array(try plain.get())
    }

    /// Opens a link record where it lies (a frame's bytes), with no copy of it first.
    public mutating func openData(_ record: UnsafeRawBufferPointer) throws(RecordError) -> Data {
        guard record.count >= RecordSealer.overhead else { throw .tooShort }
        guard record[0] == cipher.kind.rawValue else { throw .unknownKind(record[0]) }
        var kind = cipher.kind.rawValue
        let plain = try withUnsafeBytes(of: &kind) { associatedData throws(RecordError) in
            try Record.open(record, cipher: cipher, headerLength: 1, key: key, counter: counter, associatedData: associatedData)
        }
        counter += 1
        return plain
    }
}

/// The room's broadcast key for one host at one epoch and one generation of the room secret:
/// HKDF-SHA-256 with that secret as input key material, no salt, and info
/// `levchat/3/broadcast ‖ room id(8) ‖ generation(8) ‖ epoch(8) ‖ host node(16)`. Every member
/// derives it from its `welcome` (and each `rekey`); nobody without that generation's secret, or
/// an earlier one, can.
public enum BroadcastKey {
    public static func derive(grant: RoomGrant, epoch: Int, host: NodeID) -> SymmetricKey {
        var info = Array("levchat/3/broadcast".utf8)
        info += grant.roomID.bytes
        info += BigEndian.bytes(UInt64(grant.generation))
        info += BigEndian.bytes(UInt64(epoch))
        info += host.bytes
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: grant.secret), info: info, outputByteCount: 32)
    }
}

/// Seals what the host sends to every member once per broadcast, whatever the room's size.
public struct BroadcastSealer: Sendable, RecordSealing {
    private let key: SymmetricKey
    public let epoch: Int
    private var counter: UInt64 = 0

    public init(grant: RoomGrant, epoch: Int, host: NodeID) {
        key = BroadcastKey.derive(grant: grant, epoch: epoch, host: host)
        self.epoch = epoch
    }

    /// Bytes a broadcast record adds to its plaintext: kind, counter and tag.
    public static let overhead = 1 + 8 + 16
    public var overhead: Int { Self.overhead }

    public mutating func seal(_ plaintext: some DataProtocol) throws(RecordError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(plaintext.count + BroadcastSealer.overhead)
        try seal(plaintext) { out.append(contentsOf: $0) }
        return out
    }

    /// Hands the record's pieces to `write` in order (see `RecordSealer.seal(_:into:)`).
    public mutating func seal(_ plaintext: some DataProtocol, into write: (UnsafeRawBufferPointer) -> Void) throws(RecordError) {
        defer { counter += 1 }
        try Record.withBroadcastAssociatedData(epoch: epoch, counter: counter) { associatedData throws(RecordError) in
            // The header is the kind and the counter: the associated data without the epoch.
            var header: (UInt64, UInt64) = (0, 0)
            return try withUnsafeMutableBytes(of: &header) { raw throws(RecordError) in
                raw[0] = RecordKind.broadcast.rawValue
                raw.storeBytes(of: counter.bigEndian, toByteOffset: 1, as: UInt64.self)
                try Record.seal(plaintext, cipher: .chacha20Poly1305, header: UnsafeRawBufferPointer(rebasing: raw[0..<9]), key: key,
                                counter: counter, associatedData: associatedData, into: write)
            }
        }
    }
}

/// A member's side: opens broadcast records of one (epoch, host), counters rising only.
public struct BroadcastOpener: Sendable {
    private let key: SymmetricKey
    public let epoch: Int
    private var last: UInt64?

    public init(grant: RoomGrant, epoch: Int, host: NodeID) {
        key = BroadcastKey.derive(grant: grant, epoch: epoch, host: host)
        self.epoch = epoch
    }

    public mutating func open(_ record: [UInt8]) throws(RecordError) -> [UInt8] {
        let opened = record.withUnsafeBytes { bytes in Result { () throws(RecordError) -> Data in try openData(bytes) } }
        return Array(try opened.get())
    }

    /// Opens a broadcast record where it lies (a frame's bytes), with no copy of it first.
    public mutating func openData(_ record: UnsafeRawBufferPointer) throws(RecordError) -> Data {
        guard record.count >= BroadcastSealer.overhead else { throw .tooShort }
        guard record[0] == RecordKind.broadcast.rawValue else { throw .unknownKind(record[0]) }
        let counter = BigEndian.uint64(record[1..<9])
        if let last, counter <= last { throw .staleCounter(counter, last: last) }
        let plain = try Record.withBroadcastAssociatedData(epoch: epoch, counter: counter) { associatedData throws(RecordError) in
            try Record.open(record, cipher: .chacha20Poly1305, headerLength: 9, key: key, counter: counter, associatedData: associatedData)
        }
        last = counter
        return plain
    }
}

/// The AEAD of every kind (ChaCha20-Poly1305, or AES-256-GCM for kind 2): `header ‖ ciphertext ‖
/// tag`, the nonce 4 zero bytes and the counter.
enum Record {
    /// A broadcast's associated data, `1 ‖ epoch(8) ‖ counter(8)`, on the stack (the host seals
    /// one per line, a member opens one per line it receives).
    static func withBroadcastAssociatedData<T>(epoch: Int, counter: UInt64,
                                               _ body: (UnsafeRawBufferPointer) throws(RecordError) -> T) throws(RecordError) -> T {
        var bytes: (UInt8, UInt64, UInt64) = (0, 0, 0)
        return try withUnsafeMutableBytes(of: &bytes) { raw throws(RecordError) in
            raw[0] = RecordKind.broadcast.rawValue
            raw.storeBytes(of: UInt64(epoch).bigEndian, toByteOffset: 1, as: UInt64.self)
            raw.storeBytes(of: counter.bigEndian, toByteOffset: 9, as: UInt64.self)
            return try body(UnsafeRawBufferPointer(rebasing: raw[0..<17]))
        }
    }

    /// `header ‖ ciphertext ‖ tag`, handed to `write` piece by piece.
    static func seal(_ plaintext: some DataProtocol, cipher: LinkCipher, header: UnsafeRawBufferPointer, key: SymmetricKey, counter: UInt64,
                     associatedData: UnsafeRawBufferPointer, into write: (UnsafeRawBufferPointer) -> Void) throws(RecordError) {
        let combined = try withNonce(counter) { nonce throws(RecordError) -> Data in
            do {
                switch cipher {
                case .chacha20Poly1305:
                    return try ChaChaPoly.seal(plaintext, using: key, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: associatedData).combined
                case .aes256GCM:
                    return try AES.GCM.seal(plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce), authenticating: associatedData).combined!
                }
            } catch {
                throw .sealFailed
            }
        }
        write(header)
        // `nonce ‖ ciphertext ‖ tag`: the record carries all but the nonce, which is implicit.
        combined.withUnsafeBytes { write(UnsafeRawBufferPointer(rebasing: $0[nonceLength...])) }
    }

    /// Opens `record` after its `headerLength` bytes; the caller checked it is long enough.
    ///
    /// A chat line's sealed box is built in one piece (`nonce ‖ ciphertext ‖ tag`): swift-crypto's
    /// `SealedBox(nonce:ciphertext:tag:)` joins three `Data`s, which cost as much as the decryption
    /// for a chat line (Docs/BENCHMARKS.md, "Opening a record"). A file's record goes the other
    /// way: there that join's one copy of the ciphertext is cheaper than the one-piece box's two
    /// (ours, then `SealedBox(combined:)`'s own `Data(combined)`).
    static func open(_ record: UnsafeRawBufferPointer, cipher: LinkCipher, headerLength: Int, key: SymmetricKey, counter: UInt64,
                     associatedData: UnsafeRawBufferPointer) throws(RecordError) -> Data {
        let sealed = UnsafeRawBufferPointer(rebasing: record[headerLength...])
        if cipher == .aes256GCM && sealed.count > largeRecordBytes {
            // A file's record (Docs/BENCHMARKS.md, "One copy less when a record is opened").
            let tagStart = sealed.count - 16
            let nonce = try withNonce(counter) { bytes throws(RecordError) -> AES.GCM.Nonce in
                do { return try AES.GCM.Nonce(data: bytes) } catch { throw .authenticationFailed }  // 12 bytes: cannot fail
            }
            do {
                let box = try AES.GCM.SealedBox(nonce: nonce, ciphertext: UnsafeRawBufferPointer(rebasing: sealed[..<tagStart]),
                                                tag: UnsafeRawBufferPointer(rebasing: sealed[tagStart...]))
                return try AES.GCM.open(box, using: key, authenticating: associatedData)
            } catch {
                throw .authenticationFailed
            }
        }
        var combined = Data(capacity: nonceLength + sealed.count)
        try withNonce(counter) { nonce in nonce.withMemoryRebound(to: UInt8.self) { combined.append($0) } }
        sealed.withMemoryRebound(to: UInt8.self) { combined.append($0) }
        do {
            switch cipher {
            case .chacha20Poly1305:
                return try ChaChaPoly.open(ChaChaPoly.SealedBox(combined: combined), using: key, authenticating: associatedData)
            case .aes256GCM:
                return try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: key, authenticating: associatedData)
            }
        } catch {
            throw .authenticationFailed
        }
    }

    /// Above this many sealed bytes, a record is opened from its parts (`open`).
    static let largeRecordBytes = 4096

    /// Bytes of a record's nonce (either cipher).
    static let nonceLength = 12

    /// The record's nonce, on the stack: 4 zero bytes and the counter, big endian, a valid nonce
    /// for either cipher. The last counter is never used, so a direction never wraps.
    static func withNonce<T>(_ counter: UInt64, _ body: (UnsafeRawBufferPointer) throws(RecordError) -> T) throws(RecordError) -> T {
        guard counter < UInt64.max else { throw .counterExhausted }
        var bytes: (UInt64, UInt64) = (0, 0)
        return try withUnsafeMutableBytes(of: &bytes) { raw throws(RecordError) in
            raw.storeBytes(of: counter.bigEndian, toByteOffset: 4, as: UInt64.self)
            return try body(UnsafeRawBufferPointer(rebasing: raw[0..<nonceLength]))
        }
    }

    /// The key a direction moves to with `cipher`: HKDF-SHA-256 of its key so far, no salt, info
    /// `levchat/4/link/<cipher>`. A fresh key, so the counter starting again reuses no nonce.
    static func key(after key: SymmetricKey, for cipher: LinkCipher) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Array("levchat/4/link/\(cipher.rawValue)".utf8), outputByteCount: 32)
    }
}

enum BigEndian {
    static func bytes(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    static func uint64(_ bytes: some Collection<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

public enum RecordError: Error, Equatable, CustomStringConvertible {
    case tooShort
    case authenticationFailed
    case counterExhausted
    case sealFailed
    case unknownKind(UInt8)
    /// A broadcast record whose counter is not above the last one accepted (a replay).
    case staleCounter(UInt64, last: UInt64)
    /// A broadcast record to a host, or to a member before the welcome that gives its key.
    case unexpectedBroadcast

    public var description: String {
        switch self {
        case .tooShort: "encrypted record shorter than its header and tag"
        case .authenticationFailed: "encrypted record failed authentication (tampered, replayed, reordered or of another epoch)"
        case .counterExhausted: "record counter exhausted"
        case .sealFailed: "could not encrypt a record"
        case .unknownKind(let kind): "record of unknown kind \(kind)"
        case .staleCounter(let counter, let last): "broadcast record with counter \(counter), not above the last one (\(last))"
        case .unexpectedBroadcast: "broadcast record where none is expected (only a host sends them, after its welcome)"
        }
    }
}
