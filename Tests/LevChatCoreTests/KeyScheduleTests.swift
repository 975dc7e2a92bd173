import Testing
@testable import LevChatCore

/// Vectors computed independently with Python's hashlib.scrypt and an RFC 5869 HKDF.
@Suite struct KeyScheduleTests {
    let code = try! RoomCode(parsing: "7KQ-M4X")
    let salt = Array(UInt8(0)..<16)

    @Test func tagMatchesIndependentVectorAtTestCost() throws {
        let keys = try RoomKeys(code: code, salt: salt, cost: KDFCost(logN: 10))
        #expect(keys.tagHex == "da90e6d11632ddbe")
    }

    @Test func tagMatchesIndependentVectorAtProductionCost() throws {
        let keys = try RoomKeys(code: code, salt: salt, cost: .production)
        #expect(keys.tagHex == "9883acc45d0df32d")
    }

    @Test func proofMatchesIndependentVector() throws {
        let keys = try RoomKeys(code: code, salt: salt, cost: KDFCost(logN: 10))
        let proof = keys.proof(role: .client, transcript: Array(repeating: 0xAB, count: 32))
        #expect(proof.hexString == "4a5a9dabd967ca95d871f41b1e19a143946013d2fd1a5bcf6522411b665ad058")
    }

    @Test func anotherCodeOrSaltGivesAnotherTag() throws {
        let base = try RoomKeys(code: code, salt: salt, cost: KDFCost(logN: 4)).tag
        let otherCode = try RoomKeys(code: RoomCode(parsing: "7KQ-M4Y"), salt: salt, cost: KDFCost(logN: 4)).tag
        let otherSalt = try RoomKeys(code: code, salt: Array(repeating: 1, count: 16), cost: KDFCost(logN: 4)).tag
        #expect(base != otherCode)
        #expect(base != otherSalt)
    }

    @Test func hostCostsOutsideTheAcceptedRangeAreRefused() {
        #expect(KDFCost.production.isAcceptableFromHost)
        #expect(!KDFCost(logN: 0).isAcceptableFromHost)
        #expect(!KDFCost(logN: 30).isAcceptableFromHost)
        #expect(!KDFCost(logN: 16, r: 1).isAcceptableFromHost)
    }
}
