"""examples/story.sh runs against a real daemon and tells its whole story."""
import os
import subprocess
import unittest

from harness import REPO, SHREDCTL, DaemonTest


class ExampleStoryTest(DaemonTest):
    def test_story_script(self):
        env = dict(os.environ, SHREDD_SERVER=self.d.address, SHREDCTL=SHREDCTL)
        p = subprocess.run(["bash", os.path.join(REPO, "examples", "story.sh"), os.path.join(self.tmp, "work")],
                           capture_output=True, env=env, timeout=300)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertIn("12 selected (12 photos, 0 models) and 2 derived models", out)
        self.assertIn("face-model-ft.safetensors  <- derived-from (fine-tune)", out)
        self.assertIn("manifest OK", out)
        self.assertIn("(refused, as it should be)", out)
        self.assertIn("unrelated.jpg", out)


if __name__ == "__main__":
    unittest.main()
