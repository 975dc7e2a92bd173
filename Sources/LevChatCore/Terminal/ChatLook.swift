/// How the terminal chat marks people (Docs/CLI.md, "Colours"): each name in a stable colour, and
/// whether a line mentions you. Pure, so the choices are tested.
public enum ChatLook {
    /// xterm-256 colours of middle lightness, readable on dark and on light backgrounds; none is
    /// red, which the chat keeps for what could not be sent.
    public static let palette: [Int] = [32, 37, 71, 98, 133, 136, 166, 172, 29, 61, 127, 94]

    /// The colour of a name: FNV-1a over its lowercased UTF-8 (stable across runs and machines,
    /// unlike `hashValue`), so everyone sees the same person in the same colour.
    public static func color(of name: String) -> Int {
        var hash: UInt32 = 0x811C_9DC5
        for byte in name.lowercased().utf8 {
            hash ^= UInt32(byte)
            hash &*= 0x0100_0193
        }
        return palette[Int(hash % UInt32(palette.count))]
    }

    /// Whether `text` names `name` as a whole word (case does not matter): "hi bob!" mentions
    /// bob, "bobcat" does not.
    public static func mentions(_ text: String, name: String) -> Bool {
        let needle = Array(name.lowercased())
        let hay = Array(text.lowercased())
        guard !needle.isEmpty, hay.count >= needle.count else { return false }
        func isWordCharacter(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }
        for start in 0...(hay.count - needle.count) where hay[start..<start + needle.count].elementsEqual(needle) {
            let before = start == 0 || !isWordCharacter(hay[start - 1])
            let after = start + needle.count == hay.count || !isWordCharacter(hay[start + needle.count])
            if before && after { return true }
        }
        return false
    }
}
