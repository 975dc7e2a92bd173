import Crypto
import Testing
@testable import LevChatCore

/// CPACE-X25519-SHA512 against the published vectors of draft-irtf-cfrg-cpace (testvectors.md
/// and testvectors.json of the cfrg/draft-irtf-cfrg-cpace repository), byte for byte.
@Suite struct CPaceTests {
    static func hex(_ text: String) -> [UInt8] { HexBytes.decode(text)! }

    // The draft's "Test vector for CPace using group X25519 and hash SHA-512".
    static let prs = Array("Password".utf8)
    static let ci = hex("6f630b425f726573706f6e6465720b415f696e69746961746f72")
    static let sid = hex("7e4b4791d6a8ef019b936c79fb7f2c57")
    static let g = hex("64e8099e3ea682cfdc5cb665c057ebb514d06bf23ebc9f743b51b82242327074")
    static let ya = hex("21b4f4bd9e64ed355c3eb676a28ebedaf6d8f17bdc365995b319097153044080")
    static let bigYa = hex("1b02dad6dbd29a07b6d28c9e04cb2f184f0734350e32bb7e62ff9dbcfdb63d15")
    static let yb = hex("848b0779ff415f0af4ea14df9dd1d3c29ac41d836c7808896c4eba19c51ac40a")
    static let bigYb = hex("20cda5955f82c4931545bcbf40758ce1010d7db4db2a907013d79c7a8fcf957f")
    static let k = hex("f97fdfcfff1c983ed6283856a401de3191ca919902b323c5f950c9703df7297a")
    static let iskIR = hex("""
        a051ee5ee2499d16da3f69f430218b8ea94a18a45b67f9e86495b382c33d14a5\
        c38cecc0cc834f960e39e0d1bf7d76b9ef5d54eecc5e0f386c97ad12da8c3d5f
        """)

    @Test func stringUtilities() {
        #expect(CPace.prependLength([]) == [0])
        #expect(CPace.prependLength(Array("1234".utf8)) == Self.hex("0431323334"))
        #expect(CPace.prependLength((0..<127).map { UInt8($0) }).prefix(2) == [0x7f, 0x00])
        #expect(CPace.prependLength((0..<128).map { UInt8($0) }).prefix(3) == [0x80, 0x01, 0x00])
        #expect(CPace.lengthValueConcatenation(Array("1234".utf8), Array("5".utf8), [], Array("6789".utf8))
                == Self.hex("04313233340135000436373839"))
        #expect(CPace.transcriptIR(ya: Array("123".utf8), adA: Array("PartyA".utf8), yb: Array("234".utf8), adB: Array("PartyB".utf8))
                == Self.hex("03313233065061727479410332333406506172747942"))
    }

    @Test func generatorStringAndGenerator() {
        let expected = Self.hex("""
            0843506163653235350850617373776f72646d000000000000000000\
            00000000000000000000000000000000000000000000000000000000\
            00000000000000000000000000000000000000000000000000000000\
            00000000000000000000000000000000000000000000000000000000\
            000000000000000000000000000000001a6f630b425f726573706f6e\
            6465720b415f696e69746961746f72107e4b4791d6a8ef019b936c79\
            fb7f2c57
            """)
        #expect(CPace.generatorString(prs: Self.prs, ci: Self.ci, sid: Self.sid) == expected)
        #expect(Array(SHA512.hash(data: expected).prefix(32))
                == Self.hex("92806dc608984dbf4e4aae478c6ec453ae979cc01ecc1a2a7cf49f5cee56551b"))
        #expect(CPace.generator(prs: Self.prs, ci: Self.ci, sid: Self.sid) == Self.g)
    }

    @Test func messagesSharedSecretAndISK() throws {
        #expect(try CPace.scalarMultiply(Self.ya, Self.g) == Self.bigYa)
        #expect(try CPace.scalarMultiply(Self.yb, Self.g) == Self.bigYb)
        #expect(try CPace.scalarMultiply(Self.ya, Self.bigYb) == Self.k)
        #expect(try CPace.scalarMultiply(Self.yb, Self.bigYa) == Self.k)
        let isk = CPace.intermediateSessionKey(sid: Self.sid, k: Self.k, ya: Self.bigYa, adA: Array("ADa".utf8),
                                               yb: Self.bigYb, adB: Array("ADb".utf8))
        #expect(isk == Self.iskIR)
    }

    /// The draft's low-order points for X25519: u0...u5 and u7 must abort; u6, u8, u9 (values of p
    /// and above) and ua, ub (bit 255 set, so low order only if that bit were not cleared) must
    /// give these results.
    @Test func lowOrderAndNonCanonicalPoints() throws {
        let s = Self.hex("af46e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449aff")
        let aborting = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ]
        for u in aborting {
            #expect(throws: CPaceError.invalidPoint) { try CPace.scalarMultiply(s, Self.hex(u)) }
        }
        let valid = [
            ("daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
             "d8e2c776bbacd510d09fd9278b7edcd25fc5ae9adfba3b6e040e8d3b71b21806"),
            ("dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
             "c85c655ebe8be44ba9c0ffde69f2fe10194458d137f09bbff725ce58803cdb38"),
            ("d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
             "db64dafa9b8fdd136914e61461935fe92aa372cb056314e1231bc4ec12417456"),
            ("cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
             "e062dcd5376d58297be2618c7498f55baa07d7e03184e8aada20bca28888bf7a"),
            ("4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
             "993c6ad11c4c29da9a56f7691fd0ff8d732e49de6250b6c2e80003ff4629a175"),
        ]
        for (u, q) in valid {
            #expect(try CPace.scalarMultiply(s, Self.hex(u)) == Self.hex(q))
        }
    }

    /// Beyond the draft's vector: every output of the map is the u-coordinate of a point of
    /// curve25519 (u^3 + A u^2 + u is a square), through both of its branches.
    @Test func elligator2LandsOnTheCurveThroughBothBranches() {
        var rng = SystemRandomNumberGenerator()
        var branches: Set<Bool> = []
        for _ in 0..<200 {
            let r = Field25519(littleEndian: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
            let u = CPace.elligator2(r)
            let rhs = u * (u.squared() + CPace.curveA * u + .one)
            #expect(rhs.legendre().equals(.one))
            let v = -(CPace.curveA * (Field25519.one + CPace.nonSquareZ * r.squared()).inverted())
            branches.insert(u.equals(v))
        }
        #expect(branches == [true, false])
    }

    /// The field arithmetic behind Elligator2 on values near p (reduction and canonical output).
    @Test func fieldReducesAndInverts() {
        let pBytes = Self.hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
        #expect(Field25519(littleEndian: pBytes).littleEndianBytes == [UInt8](repeating: 0, count: 32))
        let pPlus1 = Self.hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
        #expect(Field25519(littleEndian: pPlus1).littleEndianBytes == [1] + [UInt8](repeating: 0, count: 31))
        let x = Field25519(littleEndian: Self.k)
        #expect((x * x.inverted()).equals(.one))
        #expect((x - x).equals(.zero))
        #expect(((-x) + x).equals(.zero))
        #expect(Field25519(4).legendre().equals(.one))
        #expect(Field25519(2).legendre().equals(-.one))
    }
}
