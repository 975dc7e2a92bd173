import Testing
@testable import LevChatTransport

/// Where a peer's outgoing connections come from (`--bind`, Docs/CLI.md).
@Suite struct TCPNetworkTests {
    @Test func onlyAnAddressOfItsOwnIsASource() {
        #expect(TCPNetwork(source: "127.0.0.10").source == "127.0.0.10")
        #expect(TCPNetwork(source: "::1").source == "::1")
        // Listening on every address: the system chooses where connections come from.
        for any in ["::", "0.0.0.0", "::0", "0:0:0:0:0:0:0:0"] { #expect(TCPNetwork(source: any).source == nil, "\(any)") }
        #expect(TCPNetwork(source: "not an address").source == nil)
        #expect(TCPNetwork().source == nil)
    }
}
