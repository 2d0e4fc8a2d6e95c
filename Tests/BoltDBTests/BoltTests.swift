import BoltDB
import DiskImage
import Testing

@Suite struct BoltTests {
    @Test func fnv1a64MatchesGo() {
        // Go: fnv.New64a() of "hello" = 0xa430d84680aabd0b
        #expect(Bolt.fnv1a64(ArraySlice("hello".utf8)) == 0xa430_d846_80aa_bd0b)
    }
}
