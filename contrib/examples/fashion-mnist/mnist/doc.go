// Package mnist holds the logic of the Fashion-MNIST example's programs:
// load (IDX files to shards and batches), prepare (shards to a float32
// training matrix), train (softmax regression by mini-batch SGD),
// evaluate (accuracy and confusion matrix), infer (one CSV of predictions
// per batch) and serve (an HTTP prediction server). The programs under
// ../cmd are thin wrappers around these functions.
//
// Everything is deterministic: the same inputs and options give
// byte-identical outputs, whatever the number of CPUs, so a pipeline that
// reruns on unchanged data produces the same commit content.
//
// # File formats
//
// Record files (load's output: training shards, image and label batches)
// start with a 20-byte header, every integer little-endian:
//
//	offset  size  field
//	0       4     magic: "FMTR" training shard (labels and images),
//	              "FMIM" images only, "FMLB" labels only
//	4       4     count N of records
//	8       4     rows (28)
//	12      4     cols (28)
//	16      4     first: index of the first record in the original set
//
// followed by N label bytes (FMTR, FMLB; 0 to 9) and then N*rows*cols
// pixel bytes (FMTR, FMIM; row-major, one image after the other, 0 is
// background, 255 full ink).
//
// prepare writes train.f32 (N*rows*cols float32 little-endian, pixel/255,
// one image per row), labels.u8 (N bytes) and meta.json.
//
// model.bin (train's output) is a softmax-regression model:
//
//	offset  size      field
//	0       4         magic "FMMD"
//	4       4         version: 1
//	8       4         features F (784)
//	12      4         classes K (10)
//	16      4*K*F     weights, float32: K rows of F, row k for class k
//	16+4KF  4*K       biases, float32
//
// all little-endian. For an image x with pixels scaled to [0,1] (pixel/255),
// the score of class k is bias[k] + sum_j weights[k][j]*x[j]; the predicted
// class is the highest score and its confidence is its softmax probability.
package mnist

// Classes are the names of Fashion-MNIST's ten labels, by label.
var Classes = [10]string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// Image geometry of Fashion-MNIST.
const (
	Rows     = 28
	Cols     = 28
	Features = Rows * Cols
)
