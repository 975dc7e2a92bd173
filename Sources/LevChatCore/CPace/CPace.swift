import Crypto

/// CPace with the ciphersuite CPACE-X25519-SHA512 of draft-irtf-cfrg-cpace (the functions and
/// names are the draft's). X25519 is swift-crypto's; the map from the password-derived hash to a
/// curve point (Elligator2) and its field arithmetic are ours (Field25519), because swift-crypto
/// does not expose them. Proven against the draft's published vectors (CPaceTests).
public enum CPace {
    /// Domain separation of the generator and of the ISK for this ciphersuite.
    static let dsi = Array("CPace255".utf8)
    static let dsiISK = Array("CPace255_ISK".utf8)
    /// SHA-512's input block size, for the zero padding of the generator string.
    static let hashBlockBytes = 128

    /// LEB128 length, then the bytes.
    static func prependLength(_ data: [UInt8]) -> [UInt8] {
        var length = data.count
        var encoded: [UInt8] = []
        repeat {
            encoded.append(length < 128 ? UInt8(length) : UInt8(length & 0x7f) | 0x80)
            length >>= 7
        } while length > 0
        return encoded + data
    }

    static func lengthValueConcatenation(_ parts: [UInt8]...) -> [UInt8] {
        parts.flatMap(prependLength)
    }

    static func generatorString(prs: [UInt8], ci: [UInt8], sid: [UInt8]) -> [UInt8] {
        let padding = max(0, hashBlockBytes - 1 - prependLength(prs).count - prependLength(dsi).count)
        return lengthValueConcatenation(dsi, prs, [UInt8](repeating: 0, count: padding), ci, sid)
    }

    /// The session's generator: Elligator2 of the first 32 bytes of SHA-512(generator string).
    /// Its discrete logarithm is unknown to everyone, which is what makes a guess testable only
    /// online.
    public static func generator(prs: [UInt8], ci: [UInt8], sid: [UInt8]) -> [UInt8] {
        let hash = Array(SHA512.hash(data: generatorString(prs: prs, ci: ci, sid: sid)))
        return elligator2(Field25519(littleEndian: Array(hash.prefix(32)))).littleEndianBytes
    }

    /// Montgomery curve25519's A.
    static let curveA = Field25519(486_662)
    /// The non-square Z = 2 of the draft (and of RFC 9380 for curve25519).
    static let nonSquareZ = Field25519(2)

    /// The u-coordinate Elligator2 maps r to (the draft's reference `elligator2`): with
    /// v = -A / (1 + Z r^2), u = v when v^3 + A v^2 + v is a square, else -v - A.
    /// 1 + 2 r^2 is never 0 (-1/2 is not a square mod p), and v^3 + A v^2 + v is never 0.
    static func elligator2(_ r: Field25519) -> Field25519 {
        let v = -(curveA * (Field25519.one + nonSquareZ * r.squared()).inverted())
        let e = v * (v.squared() + curveA * v + .one)
        let isSquare = e.legendre().equals(.one)
        return Field25519.select(-v - curveA, v, choose: isSquare)
    }

    /// A fresh secret scalar (X25519 clamps it).
    public static func randomScalar() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// The draft's `scalar_mult_vfy` for X25519: X25519(scalar, u), and an abort when the result
    /// is the neutral element (a low-order u, however encoded).
    public static func scalarMultiply(_ scalar: [UInt8], _ u: [UInt8]) throws(CPaceError) -> [UInt8] {
        guard scalar.count == 32, u.count == 32 else { throw .invalidPoint }
        let result: [UInt8]
        do {
            let secret = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: scalar)
            let shared = try secret.sharedSecretFromKeyAgreement(with: Curve25519.KeyAgreement.PublicKey(rawRepresentation: u))
            result = shared.withUnsafeBytes { Array($0) }
        } catch {
            // BoringSSL's X25519 refuses an all-zero result itself.
            throw .invalidPoint
        }
        guard result.count == 32, result.contains(where: { $0 != 0 }) else { throw .invalidPoint }
        return result
    }

    /// The draft's `transcript_ir`: initiator's message first.
    static func transcriptIR(ya: [UInt8], adA: [UInt8], yb: [UInt8], adB: [UInt8]) -> [UInt8] {
        lengthValueConcatenation(ya, adA) + lengthValueConcatenation(yb, adB)
    }

    /// The intermediate session key of the initiator-responder setting:
    /// SHA-512(lv_cat(DSI_ISK, sid, K) || transcript_ir(Ya, ADa, Yb, ADb)).
    public static func intermediateSessionKey(sid: [UInt8], k: [UInt8], ya: [UInt8], adA: [UInt8],
                                              yb: [UInt8], adB: [UInt8]) -> [UInt8] {
        var sha = SHA512()
        sha.update(data: lengthValueConcatenation(dsiISK, sid, k))
        sha.update(data: transcriptIR(ya: ya, adA: adA, yb: yb, adB: adB))
        return Array(sha.finalize())
    }
}

public enum CPaceError: Error, Equatable, Sendable {
    /// The peer's share is a low-order point (or malformed): the run aborts.
    case invalidPoint
}
