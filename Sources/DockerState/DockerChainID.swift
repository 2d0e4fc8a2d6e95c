import DiskImage

/// Docker's layer chain ids: the first is the first diff id; each next one is
/// "sha256:" + hex(sha256("<parent chain id> <diff id>")).
public func dockerChainIDs(_ diffIDs: [String]) -> [String] {
    var result: [String] = []
    for diff in diffIDs {
        if let parent = result.last {
            result.append("sha256:" + SHA256.hex(Array((parent + " " + diff).utf8)))
        } else {
            result.append(diff)
        }
    }
    return result
}
