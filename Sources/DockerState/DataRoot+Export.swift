import Assembly
import DiskImage
import FileSystems

extension DataRoot {
    /// An image's layer directories, top first (`ImageLookup`: by id, name, RepoDigest or unique id
    /// prefix of 4+ hex digits); `limits` bound the layer blobs decompressed when a containerd
    /// image's snapshots are gone.
    public func imageLayers(_ reference: String, limits: LayerLimits = LayerLimits()) throws -> (id: String, layers: [Layer]) {
        switch ImageLookup.find(reference, in: inspect(countMarkers: false).images, podmanShortNames: store == .podman) {
        case .found(let image):
            return (image.id, try imageStore.layers(ofImage: image, reference: reference, limits: limits))
        case .notFound:
            throw FWError(.notFound, "no image \(reference) in the data-root", path: path)
        case .ambiguous(let ids):
            throw FWError(.invalidArgument, "image reference \(reference) is ambiguous: it matches \(ids.joined(separator: ", "))", path: path)
        }
    }

    /// A container's layers, top first (by name, id or id prefix of 4+ characters): its rw
    /// layer, its -init layer, its image's layers.
    public func containerLayers(_ reference: String) throws -> (id: String, layers: [Layer]) {
        let containers = inspect(countMarkers: false).containers
        let match = containers.first { $0.id == reference || $0.name == reference || $0.name == "/" + reference }
            ?? containers.first { reference.count >= 4 && $0.id.hasPrefix(reference) }
        let store = imageStore
        if match == nil, let unlisted = try store.unlistedContainerLayers(reference) {
            return unlisted
        }
        guard let container = match else {
            throw FWError(.notFound, "no container \(reference) in the data-root", path: path)
        }
        return (container.id, try store.layers(ofContainer: container))
    }
}
