import Testing
@testable import LevChatCore

@Suite struct RoomAdvertisementTests {
    static let room = RoomID(hex: "00112233aabbccdd")!
    static let host = NodeID(hex: "0123456789abcdef0123456789abcdef")!

    func pairs(_ txt: [String]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: txt.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        })
    }

    @Test func theTXTRecordHoldsOnlyVersionRoomIDAndEpoch() throws {
        let ad = RoomAdvertisement(room: Self.room, host: Self.host, epoch: 3, port: 7000)
        #expect(ad.instanceName == "lc-00112233aabbccdd-01234567")
        #expect(ad.txtRecord == ["txtvers=2", "pv=5-5", "rid=00112233aabbccdd", "ep=3"])
        let read = try #require(RoomAdvertisement(instanceName: ad.instanceName, port: 7000, txt: pairs(ad.txtRecord)))
        #expect(read == ad)
    }

    @Test(arguments: [
        ["txtvers": "1"],
        ["pv": "1"], ["pv": "3-1"], ["pv": "a-b"],
        ["rid": "00"], ["rid": "zz" + String(repeating: "0", count: 14)], ["rid": String(repeating: "0", count: 18)],
        ["ep": "-1"], ["ep": "many"], ["ep": String(repeating: "9", count: 40)],
    ])
    func malformedRecordsAreSkipped(_ change: [String: String]) {
        var txt = pairs(RoomAdvertisement(room: Self.room, host: Self.host, epoch: 1, port: 7000).txtRecord)
        for (key, value) in change { txt[key] = value }
        #expect(RoomAdvertisement(instanceName: "x", port: 7000, txt: txt) == nil)
    }

    @Test func missingKeysOrBadPortsAreSkipped() {
        let txt = pairs(RoomAdvertisement(room: Self.room, host: Self.host, epoch: 1, port: 7000).txtRecord)
        for key in ["txtvers", "pv", "rid", "ep"] {
            var without = txt
            without[key] = nil
            #expect(RoomAdvertisement(instanceName: "x", port: 7000, txt: without) == nil)
        }
        #expect(RoomAdvertisement(instanceName: "x", port: 0, txt: txt) == nil)
    }
}
