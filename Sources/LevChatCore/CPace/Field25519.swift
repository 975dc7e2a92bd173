/// An element of GF(2^255 - 19) in five 51-bit limbs, for the Elligator2 map of CPace
/// (Docs/ARCHITECTURE.md says why this is hand-written: swift-crypto exposes X25519 but not its
/// field). Every operation runs in time independent of the values: no branch and no index depends
/// on them; the exponents used below are public constants.
struct Field25519: Sendable {
    private var limbs: (UInt64, UInt64, UInt64, UInt64, UInt64)

    private static let mask51: UInt64 = (1 << 51) - 1

    private init(_ l0: UInt64, _ l1: UInt64, _ l2: UInt64, _ l3: UInt64, _ l4: UInt64) {
        limbs = (l0, l1, l2, l3, l4)
    }

    static let zero = Field25519(0, 0, 0, 0, 0)
    static let one = Field25519(1, 0, 0, 0, 0)

    init(_ small: UInt64) {
        precondition(small < 1 << 51)
        self.init(small, 0, 0, 0, 0)
    }

    /// RFC 7748 decodeUCoordinate: 32 bytes little endian, bit 255 ignored. Values from p to
    /// 2^255 - 1 are accepted and reduce mod p in the arithmetic.
    init(littleEndian bytes: [UInt8]) {
        precondition(bytes.count == 32)
        func word(_ i: Int) -> UInt64 {
            var w: UInt64 = 0
            for j in 0..<8 { w |= UInt64(bytes[i * 8 + j]) << (8 * UInt64(j)) }
            return w
        }
        let w0 = word(0), w1 = word(1), w2 = word(2), w3 = word(3) & 0x7fff_ffff_ffff_ffff
        self.init(w0 & Self.mask51,
                  (w0 >> 51 | w1 << 13) & Self.mask51,
                  (w1 >> 38 | w2 << 26) & Self.mask51,
                  (w2 >> 25 | w3 << 39) & Self.mask51,
                  w3 >> 12)
    }

    /// Canonical 32-byte little-endian encoding (fully reduced below p).
    var littleEndianBytes: [UInt8] {
        var t = carried().carried()
        // t < 2^255 + small; subtract p if t >= p, without branching: q = (t + 19) >> 255.
        var q = (t.limbs.0 + 19) >> 51
        q = (t.limbs.1 + q) >> 51
        q = (t.limbs.2 + q) >> 51
        q = (t.limbs.3 + q) >> 51
        q = (t.limbs.4 + q) >> 51
        t.limbs.0 += 19 &* q
        t.limbs.1 += t.limbs.0 >> 51; t.limbs.0 &= Self.mask51
        t.limbs.2 += t.limbs.1 >> 51; t.limbs.1 &= Self.mask51
        t.limbs.3 += t.limbs.2 >> 51; t.limbs.2 &= Self.mask51
        t.limbs.4 += t.limbs.3 >> 51; t.limbs.3 &= Self.mask51
        t.limbs.4 &= Self.mask51
        let w0 = t.limbs.0 | t.limbs.1 << 51
        let w1 = t.limbs.1 >> 13 | t.limbs.2 << 38
        let w2 = t.limbs.2 >> 26 | t.limbs.3 << 25
        let w3 = t.limbs.3 >> 39 | t.limbs.4 << 12
        var out = [UInt8](repeating: 0, count: 32)
        for (i, w) in [w0, w1, w2, w3].enumerated() {
            for j in 0..<8 { out[i * 8 + j] = UInt8(truncatingIfNeeded: w >> (8 * UInt64(j))) }
        }
        return out
    }

    /// Limbs brought under 2^51 each (the value may still be at or above p).
    private func carried() -> Field25519 {
        var (a, b, c, d, e) = limbs
        b += a >> 51; a &= Self.mask51
        c += b >> 51; b &= Self.mask51
        d += c >> 51; c &= Self.mask51
        e += d >> 51; d &= Self.mask51
        a += 19 &* (e >> 51); e &= Self.mask51
        b += a >> 51; a &= Self.mask51
        return Field25519(a, b, c, d, e)
    }

    static func + (x: Field25519, y: Field25519) -> Field25519 {
        Field25519(x.limbs.0 + y.limbs.0, x.limbs.1 + y.limbs.1, x.limbs.2 + y.limbs.2,
                   x.limbs.3 + y.limbs.3, x.limbs.4 + y.limbs.4).carried()
    }

    static func - (x: Field25519, y: Field25519) -> Field25519 {
        // Adds 4p first so no limb goes below zero (inputs are carried, limbs < 2^52).
        let x = x.carried(), y = y.carried()
        return Field25519(x.limbs.0 + 0x1f_ffff_ffff_ffb4 - y.limbs.0,
                          x.limbs.1 + 0x1f_ffff_ffff_fffc - y.limbs.1,
                          x.limbs.2 + 0x1f_ffff_ffff_fffc - y.limbs.2,
                          x.limbs.3 + 0x1f_ffff_ffff_fffc - y.limbs.3,
                          x.limbs.4 + 0x1f_ffff_ffff_fffc - y.limbs.4).carried()
    }

    static prefix func - (x: Field25519) -> Field25519 { .zero - x }

    static func * (x: Field25519, y: Field25519) -> Field25519 {
        let x = x.carried(), y = y.carried()
        let (a0, a1, a2, a3, a4) = x.limbs
        let (b0, b1, b2, b3, b4) = y.limbs
        func m(_ u: UInt64, _ v: UInt64) -> UInt128 { UInt128(u) * UInt128(v) }
        let b1_19 = b1 * 19, b2_19 = b2 * 19, b3_19 = b3 * 19, b4_19 = b4 * 19
        let c0 = m(a0, b0) + m(a1, b4_19) + m(a2, b3_19) + m(a3, b2_19) + m(a4, b1_19)
        var c1 = m(a0, b1) + m(a1, b0) + m(a2, b4_19) + m(a3, b3_19) + m(a4, b2_19)
        var c2 = m(a0, b2) + m(a1, b1) + m(a2, b0) + m(a3, b4_19) + m(a4, b3_19)
        var c3 = m(a0, b3) + m(a1, b2) + m(a2, b1) + m(a3, b0) + m(a4, b4_19)
        var c4 = m(a0, b4) + m(a1, b3) + m(a2, b2) + m(a3, b1) + m(a4, b0)
        let mask = UInt128(Self.mask51)
        c1 += c0 >> 51
        c2 += c1 >> 51
        c3 += c2 >> 51
        c4 += c3 >> 51
        let r0 = UInt64(truncatingIfNeeded: c0 & mask) + UInt64(truncatingIfNeeded: c4 >> 51) * 19
        return Field25519(r0, UInt64(truncatingIfNeeded: c1 & mask), UInt64(truncatingIfNeeded: c2 & mask),
                          UInt64(truncatingIfNeeded: c3 & mask), UInt64(truncatingIfNeeded: c4 & mask)).carried()
    }

    func squared() -> Field25519 { self * self }

    /// self^e for a public exponent given as 32 little-endian bytes (square and multiply; the
    /// branch is on the exponent's bits, which are constants, never on the value).
    func power(littleEndianExponent e: [UInt8]) -> Field25519 {
        var result = Field25519.one
        for bit in stride(from: 255, through: 0, by: -1) {
            result = result.squared()
            if (e[bit / 8] >> (bit % 8)) & 1 == 1 { result = result * self }
        }
        return result
    }

    /// p - 2, for inversion by Fermat (0 maps to 0, which the callers rule out).
    private static let pMinus2: [UInt8] = [0xeb] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
    /// (p - 1) / 2, for the Legendre symbol.
    private static let halfPMinus1: [UInt8] = [0xf6] + [UInt8](repeating: 0xff, count: 30) + [0x3f]

    func inverted() -> Field25519 { power(littleEndianExponent: Self.pMinus2) }

    /// 1 when self is a non-zero square, p - 1 when it is not, 0 for 0.
    func legendre() -> Field25519 { power(littleEndianExponent: Self.halfPMinus1) }

    /// Constant-time equality of the values (not of the limb representations).
    func equals(_ other: Field25519) -> Bool {
        let a = littleEndianBytes, b = other.littleEndianBytes
        var diff: UInt8 = 0
        for i in 0..<32 { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// `choose ? b : a` without a branch on `choose`.
    static func select(_ a: Field25519, _ b: Field25519, choose: Bool) -> Field25519 {
        let mask = UInt64(0) &- UInt64(choose ? 1 : 0)
        let a = a.carried(), b = b.carried()
        return Field25519(a.limbs.0 ^ (mask & (a.limbs.0 ^ b.limbs.0)), a.limbs.1 ^ (mask & (a.limbs.1 ^ b.limbs.1)),
                          a.limbs.2 ^ (mask & (a.limbs.2 ^ b.limbs.2)), a.limbs.3 ^ (mask & (a.limbs.3 ^ b.limbs.3)),
                          a.limbs.4 ^ (mask & (a.limbs.4 ^ b.limbs.4)))
    }
}
