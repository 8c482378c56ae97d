// Copy buttons for the token shown once. Optional: without JavaScript the buttons stay
// hidden and the token can be selected and copied by hand.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var input = document.getElementById(button.getAttribute("data-copy"));
  if (!input || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(input.value).then(function () {
      button.textContent = "Copied";
    });
  });
});
